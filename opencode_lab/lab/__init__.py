"""Application services: the Lab, the compare engine, run-log queries and health snapshots."""
