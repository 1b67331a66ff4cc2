"""The bench's floor DAG has the pipeline's shape: otherwise "pipeline - floor" is not our own work."""

from __future__ import annotations

import runpy

from tests.conftest import REPO


def shape(dag) -> dict[str, object]:
    return {
        "edges": {task.task_id: sorted(task.downstream_task_ids) for task in dag.tasks},
        "trigger_rules": {task.task_id: str(task.trigger_rule) for task in dag.tasks},
        "setup": sorted(task.task_id for task in dag.tasks if task.is_setup),
        "teardown": sorted(task.task_id for task in dag.tasks if task.is_teardown),
        "mapped_groups": {group_id: sorted(group.children) for group_id, group in dag.task_group_dict.items()
                          if type(group).__name__ == "MappedTaskGroup"},
    }


def test_the_floor_dag_has_the_pipelines_tasks_edges_mapping_and_trigger_rules(pipeline_dag) -> None:
    floor = runpy.run_path(str(REPO / "bench" / "dags" / "pipeline_shape_noop.py"))["dag"]
    assert shape(floor) == shape(pipeline_dag)
    assert shape(floor)["mapped_groups"] == {"workers": ["bundle", "typecheck", "upload"]}
