"""Run the DAG with ``dag.test()`` and read back what Airflow recorded: states, XComs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any


@dataclass
class PipelineRun:
    run_id: str
    state: str
    task_states: dict[str, str]
    xcoms: dict[str, Any]
    links: dict[str, str]  # "<task_id>/<link name>" -> URL, as the UI shows them
    # the mapped tasks (bundle, typecheck, upload: one instance per worker) by (task_id, map_index)
    mapped_states: dict[tuple[str, int], str] = field(default_factory=dict)
    mapped_xcoms: dict[tuple[str, int], Any] = field(default_factory=dict)
    keyed_xcoms: dict[tuple[str, str], Any] = field(default_factory=dict)  # (task_id, key): the other keys

    def xcom(self, task_id: str, map_index: int | None = None, *, key: str = "return_value") -> Any:
        """A task's result (or its XCom ``key``); for a mapped task, its instance ``map_index`` (by
        default the one there is)."""
        if key != "return_value":
            return self.keyed_xcoms.get((task_id, key))
        return self.xcoms.get(task_id) if map_index is None else self.mapped_xcoms.get((task_id, map_index))


def run_pipeline(dag: Any, conf: dict[str, Any], *, fill_defaults: bool = True) -> PipelineRun:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    # dag.test() runs every task in this process, and Airflow's param merging writes each run's
    # conf into the DAG's Param objects; a later run would inherit values it did not send. Each
    # run therefore sends every parameter, defaults taken from the pristine schema.
    from cloudflare_worker_pipeline.parameters import dag_params

    defaults = {name: param.value for name, param in dag_params().items() if param.has_value} if fill_defaults else {}
    dag_run = dag.test(run_conf={**defaults, **conf} or None)
    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        task_states = {ti.task_id: _value(ti.state) for ti in tis}
        mapped_states = {(ti.task_id, ti.map_index): _value(ti.state) for ti in tis if ti.map_index >= 0}
        rows = session.query(XComModel).filter(XComModel.dag_id == dag.dag_id, XComModel.run_id == dag_run.run_id).all()
        xcoms = {row.task_id: XComModel.deserialize_value(row) for row in rows if row.key == "return_value"}
        mapped_xcoms = {(row.task_id, row.map_index): XComModel.deserialize_value(row) for row in rows
                        if row.key == "return_value" and row.map_index >= 0}
        links = {f"{row.task_id}/{row.key.removeprefix('_link_')}": XComModel.deserialize_value(row)
                 for row in rows if row.key.startswith("_link_")}
        keyed = {(row.task_id, row.key): XComModel.deserialize_value(row) for row in rows
                 if row.key != "return_value" and not row.key.startswith("_link_") and row.map_index < 0}
    return PipelineRun(run_id=dag_run.run_id, state=_value(dag_run.state), task_states=task_states, xcoms=xcoms,
                       links=links, mapped_states=mapped_states, mapped_xcoms=mapped_xcoms, keyed_xcoms=keyed)


def _value(state: Any) -> str:
    return str(getattr(state, "value", state))


@contextmanager
def fast_retries(dag: Any, *task_ids: str) -> Iterator[None]:
    """Keep the DAG's retry counts but wait a second between tries instead of the production delay."""
    tasks = [dag.get_task(task_id) for task_id in task_ids]
    saved = [(task.retry_delay, task.max_retry_delay) for task in tasks]
    for task in tasks:
        task.retry_delay, task.max_retry_delay = timedelta(seconds=1), timedelta(seconds=2)
    try:
        yield
    finally:
        for task, (delay, max_delay) in zip(tasks, saved, strict=True):
            task.retry_delay, task.max_retry_delay = delay, max_delay
