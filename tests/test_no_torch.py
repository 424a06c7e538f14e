"""The query path (load a model folder, embed text and images) must never import torch."""

import subprocess
import sys
import textwrap

HEAVY = ("torch", "torchvision", "open_clip", "sentence_transformers", "transformers", "onnx")


def test_runtime_path_never_imports_torch(tiny_clip_dir, minilm_dir):
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from PIL import Image
        from indexers import load_model
        import mmsearch.cli
        clip = load_model({str(tiny_clip_dir)!r})
        bert = load_model({str(minilm_dir)!r})
        clip.embed_images([Image.fromarray(np.zeros((40, 50, 3), np.uint8))])
        clip.embed_texts(["a photo of a cat"])
        bert.embed_texts(["a photo of a cat"])
        print(",".join(m for m in {HEAVY!r} if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"query path imported: {out.stdout.strip()}"
