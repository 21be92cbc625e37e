"""Peak memory of wav2vec2-base (random weights, released size) over long speech: one pass vs slices.

    python benchmarks/speech_encoder_memory.py --seconds 60 240

Each measurement runs in a fresh process; prints JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[60.0, 240.0])
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(float(args.worker[0]), args.worker[1])))
        return
    runs = []
    for seconds in args.seconds:
        for mode in ("one_pass", "sliced"):
            output = subprocess.run([sys.executable, __file__, "--worker", str(seconds), mode],
                                    check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(output.strip().splitlines()[-1]))
    print(json.dumps(runs, indent=2))


def measure(seconds: float, mode: str) -> dict:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from vexpress_cli.engine.networks.speech_encoder import encode_speech

    model = Wav2Vec2Model(Wav2Vec2Config()).eval()
    speech = torch.randn(1, int(seconds * 16000)) * 0.1
    before = peak_mb()
    started = time.perf_counter()
    with torch.no_grad():
        hidden = model(speech).last_hidden_state if mode == "one_pass" else encode_speech(model, speech)
    return {"audio_seconds": seconds, "mode": mode, "frames": hidden.shape[1],
            "seconds": round(time.perf_counter() - started, 1), "peak_rss_mb": round(peak_mb()),
            "peak_rss_mb_before": round(before)}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
