"""The lifecycle runner: recipes, run directories, reports."""
