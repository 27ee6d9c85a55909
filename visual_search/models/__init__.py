"""Models, apart from the stages that use them: which class builds each (registry.py), loading and the
compute boundary a ZeroGPU worker runs (compute.py), the query side's models (query_models.py), and
the query encoders on ONNX Runtime (backend.py, onnxrt/)."""
