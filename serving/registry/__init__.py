"""The model registry: packages and their states, the package store, hot swap, shadow scoring,
`kito models ...` and the model routes."""
