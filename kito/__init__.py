"""The `kito` command line: a thin dispatcher that imports each command's code only when run."""
