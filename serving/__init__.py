"""Kito QC's inspection service: FastAPI app, settings, auth, database, object store.

Never imports torch or training (ARCHITECTURE.md); the model runs through qc_model's ONNX code.
"""
