"""Example DAGs: the triggered pipeline, and one scheduled rebuild DAG per service of a services file."""
