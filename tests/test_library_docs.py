"""Every ```python block of docs/library.md runs as written, in order, on the tiny random model.

The blocks run in one shared namespace (a later block uses the names and files of earlier ones) in a
temporary folder holding what the page says it needs: ``ref.jpg`` (the AOC sample's portrait),
``speech.wav`` (0.4 s of its speech) and ``driving.mp4`` (half a second of its video, with sound). The
weights are the tiny test model ($VEXPRESS_MODEL_DIR), and a user config file makes every generation
64x64 pixels with one denoising step, as the page says, so the blocks run as a user would type them and
the whole page takes seconds per video.

A block that cannot run here starts with the line ``# needs a GPU``: its test is skipped (the block is
still compiled, so its syntax is checked). No other marker skips a block.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, SAMPLES_DIR, TINY_MODEL_DIR

LIBRARY_DOC = REPO_ROOT / "docs" / "library.md"
SKIP_MARKER = "# needs a GPU"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
SMALL_GENERATIONS = "[generate]\nwidth = 64\nheight = 64\nnum_inference_steps = 1\n"


def python_blocks() -> list[tuple[int, str]]:
    """(line number of the opening fence, code) of every ```python block."""
    text = LIBRARY_DOC.read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start()) + 1, match.group(1)) for match in BLOCK.finditer(text)]


BLOCKS = python_blocks()


def needs_a_gpu(code: str) -> bool:
    return code.lstrip().startswith(SKIP_MARKER)


@pytest.fixture(scope="module")
def docs_folder(tmp_path_factory, like_the_real_command):
    """The folder the page's examples run in, with their inputs and settings; the current folder meanwhile."""
    from vexpress_cli.media.ffmpeg import ffmpeg_exe

    folder = tmp_path_factory.mktemp("library-docs")
    shutil.copy(SAMPLES_DIR / "AOC" / "ref.jpg", folder / "ref.jpg")
    for name, arguments in (("speech.wav", ["-ss", "1.0", "-t", "0.4", "-i", str(SAMPLES_DIR / "AOC" / "aud.mp3")]),
                            ("driving.mp4", ["-t", "0.5", "-i", str(SAMPLES_DIR / "AOC" / "gt.mp4")])):
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *arguments, str(folder / name)], check=True)
    config = folder.parent / "library-docs-config"
    config.mkdir()
    (config / "config.toml").write_text(SMALL_GENERATIONS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VEXPRESS_CONFIG_DIR", str(config))
        patch.setenv("VEXPRESS_MODEL_DIR", str(TINY_MODEL_DIR))
        patch.delenv("VEXPRESS_MODEL", raising=False)
        patch.setenv("HF_HUB_CACHE", str(folder.parent / "empty-hf-cache"))
        patch.chdir(folder)
        yield folder


@pytest.fixture(scope="module")
def page_state():
    """The namespace the blocks share, and the indexes of the blocks already run in it."""
    return {"namespace": {"__name__": "library_docs"}, "ran": set()}


def run_block(index: int, state: dict) -> None:
    line, code = BLOCKS[index]
    state["ran"].add(index)
    exec(compile(code, f"docs/library.md, block at line {line}", "exec"), state["namespace"])


def test_the_page_has_runnable_blocks_and_skips_only_gpu_ones():
    assert len(BLOCKS) >= 10
    skipped = [code for _, code in BLOCKS if needs_a_gpu(code)]
    assert 0 < len(skipped) < len(BLOCKS) // 2
    for line, code in BLOCKS:
        compile(code, f"docs/library.md, block at line {line}", "exec")  # every block, skipped or not, parses


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"line-{line}" for line, _ in BLOCKS])
@pytest.mark.slow
def test_library_doc_block_runs_as_written(index, docs_folder, page_state):
    line, code = BLOCKS[index]
    if needs_a_gpu(code):
        pytest.skip(f"docs/library.md line {line}: {SKIP_MARKER}")
    for earlier in range(index):  # when run alone (-k), the blocks it builds on run first
        if earlier not in page_state["ran"] and not needs_a_gpu(BLOCKS[earlier][1]):
            run_block(earlier, page_state)
    run_block(index, page_state)


INPUTS_BLOCK = re.compile(r"^```bash\n(# the example inputs.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.slow
def test_the_pages_recipe_for_its_inputs_makes_them_from_a_clone(tmp_path):
    from vexpress_cli.media.ffmpeg import probe

    (block,) = INPUTS_BLOCK.findall(LIBRARY_DOC.read_text(encoding="utf-8"))
    environment = {**os.environ, "REPO": str(REPO_ROOT),
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=environment, check=True)
    assert (tmp_path / "ref.jpg").read_bytes() == (SAMPLES_DIR / "AOC" / "ref.jpg").read_bytes()
    assert abs(probe(tmp_path / "speech.wav", "audio").duration - 2.0) < 0.05
    driving = probe(tmp_path / "driving.mp4", "video")
    assert abs(driving.duration - 2.0) < 0.1 and driving.audio is not None


def test_the_page_s_misspelt_setting_example_prints_what_it_says():
    """The page said error.what was "Generation settings: unknown key ..." (the words of an older message)."""
    import vexpress_cli

    text = LIBRARY_DOC.read_text(encoding="utf-8")
    said = {name: re.search(rf"print\(error\.{name}\)\s+# (.*)", text).group(1) for name in ("what", "fix")}
    with pytest.raises(vexpress_cli.InputError) as raised:
        vexpress_cli.generate("ref.jpg", "speech.wav", "typo.mp4", num_inference_step=20)
    assert raised.value.what == said["what"]
    assert raised.value.fix.startswith(said["fix"].removesuffix(" ...")), raised.value.fix
