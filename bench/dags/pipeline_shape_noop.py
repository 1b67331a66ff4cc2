"""Airflow's floor for the pipeline's graph: the same tasks, edges, mapped group and trigger rules
as ``build_and_upload_cloudflare_worker``, each task returning at once.

`make bench` runs it through the same running Airflow as the pipeline: its trigger-to-success is
what Airflow's scheduling costs for this graph, and the pipeline's excess over it is our own work.
``tests/unit/test_bench_floor.py`` checks the shape stays the pipeline's.
"""

import airflow.sdk.definitions.decorators
import airflow.sdk.definitions.timetables.interval
import airflow.timetables.base  # noqa: F401
import pendulum
from airflow.sdk import DAG, BaseOperator, XComArg, task_group
from airflow.task.trigger_rule import TriggerRule

NOOP_DAG_ID = "pipeline_shape_noop"


class ReturnAtOnce(BaseOperator):
    """Returns ``value`` (setup: the workers, a list of one) and pushes ``extra`` as XComs: its
    XComArgs make the same edges, and resolve the same pulls, as the pipeline's arguments."""

    template_fields = ("extra",)

    def __init__(self, *, value=None, extra=None, **kwargs):
        super().__init__(**kwargs)
        self.value, self.extra = value, extra or {}

    def execute(self, context):
        for key, value in self.extra.items():
            context["ti"].xcom_push(key=key, value=value)
        return self.value


with DAG(NOOP_DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
         tags=["bench"]) as dag:
    setup = ReturnAtOnce(task_id="setup", value=[{"index": 0}], extra={"parameters": {}})
    parameters = XComArg(setup, key="parameters")
    checkout = ReturnAtOnce(task_id="checkout", value={}, extra={"p": parameters})
    install = ReturnAtOnce(task_id="install", extra={"p": parameters, "c": checkout.output})
    kustomize = ReturnAtOnce(task_id="kustomize_build", extra={"p": parameters})

    @task_group(group_id="workers", prefix_group_id=False)
    def each_worker(worker):
        node = {"p": parameters, "c": checkout.output, "w": worker}
        bundle = ReturnAtOnce(task_id="bundle", value={}, extra=node)
        typecheck = ReturnAtOnce(task_id="typecheck", extra=node)
        upload = ReturnAtOnce(task_id="upload", extra={**node, "b": bundle.output, "i": install.output})
        install >> [bundle, typecheck] >> upload
        kustomize >> upload

    workers = each_worker.expand(worker=setup.output)
    publish = ReturnAtOnce(task_id="publish", extra={"c": checkout.output}, trigger_rule=TriggerRule.NONE_FAILED)
    cleanup = ReturnAtOnce(task_id="remove_workspace", extra={"p": parameters})
    setup >> checkout >> install >> workers >> publish
    checkout >> kustomize >> publish
    publish >> cleanup.as_teardown(setups=setup)
