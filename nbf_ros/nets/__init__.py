"""U-Net feature extractor + heads (ONNX-exportable, no file I/O)."""
from nbf_ros.nets.model import (INPUT_NAME, OUTPUT_NAMES, ExportWrapper, NBFNet, NetOutput,
                                heatmap_keypoints)

__all__ = ["INPUT_NAME", "OUTPUT_NAMES", "ExportWrapper", "NBFNet", "NetOutput", "heatmap_keypoints"]
