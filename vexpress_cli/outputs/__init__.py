"""Writing outputs: the checks made before any slow work, and the one way every file is written.

:func:`check_output` tells in the first second whether an output path can be written: a known
suffix, no existing output unless overwriting is allowed, no folder in the way, a parent folder
that exists (or may be created) and is writable.

:func:`atomic_output` (one file or folder) and :func:`atomic_outputs` (several, all or none) are
how every writer puts its result in place. The output is written under a temporary name in the
target folder, ``.NAME.vexpress-PID-RANDOM-HOST.partial.SUFFIX`` (the real suffix stays last,
so ffmpeg and torch still see the format), synced to disk, and moved to its name only when it is
complete. The move never replaces an output that appeared in the meantime unless overwriting
was allowed; on any exception (Ctrl-C and SystemExit included) the run removes its own
temporary files and nothing else (and the folders it created for them, when left empty).
Temporary files left by a run that was killed are recognised by the process id in their name
and removed by the next run that writes into the same folder, once that process is gone.

The pre-checks are in ``checks.py``, the atomic outputs in ``atomic.py``, the file-size limit in
``size_limit.py``; import them from here. Neutral ground for every layer that writes files (media,
kps, downloads): nothing here imports the rest of vexpress_cli except its errors and file types.
See docs/outputs.md.
"""


from vexpress_cli.outputs.atomic import (
    AtomicOutput,
    AtomicOutputs,
    OutputAppearedError,
    Transaction,
    atomic_output,
    atomic_outputs,
    is_temp_name,
    missing_folders,
    process_alive,
    remove_if_empty,
    remove_stale_temps,
    written_meanwhile,
)
from vexpress_cli.outputs.checks import (
    KIND_NAMES,
    OUTPUT_KINDS,
    OVERWRITE_FIX,
    WRITABLE_FIX,
    OutputKind,
    check_output,
    ensure_writable_folder,
    input_it_would_replace,
    looks_like_frame_folder,
    next_free_name,
    output_kind,
    prepare_output_path,
    refuse_replacing_an_input,
)
from vexpress_cli.outputs.size_limit import file_size_limit, file_size_limit_error, hit_file_size_limit

__all__ = [
    "KIND_NAMES",
    "OUTPUT_KINDS",
    "OVERWRITE_FIX",
    "WRITABLE_FIX",
    "AtomicOutput",
    "AtomicOutputs",
    "OutputAppearedError",
    "OutputKind",
    "Transaction",
    "atomic_output",
    "atomic_outputs",
    "check_output",
    "ensure_writable_folder",
    "file_size_limit",
    "file_size_limit_error",
    "hit_file_size_limit",
    "input_it_would_replace",
    "is_temp_name",
    "missing_folders",
    "looks_like_frame_folder",
    "next_free_name",
    "output_kind",
    "prepare_output_path",
    "process_alive",
    "refuse_replacing_an_input",
    "remove_if_empty",
    "remove_stale_temps",
    "written_meanwhile",
]
