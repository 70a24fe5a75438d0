"""Running the dbt project (feature marts) and reading what it built."""
