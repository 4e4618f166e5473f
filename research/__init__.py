"""Studies worth re-running (not installed, not in the default tests): research/README.md says
what each one found. Research code may import the product (qc_model, training); the product
never imports research."""
