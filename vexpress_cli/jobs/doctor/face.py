"""Checks of face detection: insightface, onnxruntime's providers, the SCRFD detector file and the dlib fallback."""

from __future__ import annotations

from vexpress_cli.errors import VExpressError
from vexpress_cli.jobs.doctor.report import (
    FAILURE, OK, WARNING, Check, DoctorContext, describe, human_size, join,
)


def face_checks(context: DoctorContext) -> list[Check]:
    insightface_check = _insightface_check()
    providers_check = _onnxruntime_check()
    detector_check, detector_usable = _detector_check(context, insightface_check.status == OK)
    dlib_check = _dlib_check(fallback_available=detector_usable)
    return [insightface_check, providers_check, detector_check, dlib_check]


def _insightface_check() -> Check:
    try:
        import insightface
    except Exception as error:  # ImportError, or a broken native dependency
        return Check("insightface", WARNING, f"cannot be imported ({describe(error)}); the dlib backend is used",
                     "pip install insightface")
    return Check("insightface", OK, f"insightface {getattr(insightface, '__version__', '?')}")


def _onnxruntime_check() -> Check:
    import torch

    try:
        import onnxruntime
    except Exception as error:
        return Check("onnxruntime", WARNING, f"cannot be imported ({describe(error)}); the dlib backend is used",
                     "pip install onnxruntime (or onnxruntime-gpu on NVIDIA machines)")
    providers = onnxruntime.get_available_providers()
    detail = f"onnxruntime {onnxruntime.__version__}, providers: {', '.join(providers)}"
    data = {"providers": providers}
    if "CUDAExecutionProvider" in providers:
        return Check("onnxruntime", OK, detail, data=data)
    if torch.cuda.is_available():
        return Check("onnxruntime", WARNING, detail + " (no CUDAExecutionProvider: face detection runs on the CPU)",
                     "pip uninstall onnxruntime && pip install onnxruntime-gpu", data=data)
    return Check("onnxruntime", OK, detail + " (CPU is all this machine has)", data=data)


def _detector_check(context: DoctorContext, insightface_ok: bool) -> tuple[Check, bool]:
    """The SCRFD detector file, loaded; also whether the insightface backend is usable."""
    from vexpress_cli.face import default_model_root, find_detector

    root = context.model_root if context.model_root is not None else default_model_root()
    detector = find_detector(root)
    if detector is None:
        from vexpress_cli.engine import model_folder as layout

        # The detector is looked for inside the model folder; without one there is no real path to name.
        where = (f"at {context.model_root / layout.INSIGHTFACE_DETECTOR}" if context.model_root else
                 f"(it is looked for in the model folder, at <model folder>/{layout.INSIGHTFACE_DETECTOR.as_posix()}, "
                 "and no model folder was found)")
        return Check("face detector", WARNING,
                     f"det_10g.onnx not found {where}; the dlib backend stands in (about 2-4 px from "
                     "the reference keypoints)",
                     "Run `vexpress models download` (it fetches det_10g.onnx with the other missing files)."), False
    size = human_size(detector.stat().st_size)
    if not insightface_ok:
        return Check("face detector", WARNING, f"{detector} ({size}) is present but insightface is not usable",
                     "pip install insightface"), False
    from vexpress_cli.face.insightface_backend import InsightFaceBackend

    try:
        InsightFaceBackend(detector, input_size=(512, 512))
    except VExpressError as error:
        return Check("face detector", FAILURE, join(error.what, error.why), error.fix), False
    return Check("face detector", OK, f"{detector} ({size}) loads as SCRFD"), True


def _dlib_check(fallback_available: bool) -> Check:
    """The offline dlib backend loads (the detector and the 68-point predictor file)."""
    from vexpress_cli.face.dlib_backend import DlibBackend, predictor_path

    status = WARNING if fallback_available else FAILURE
    consequence = "" if fallback_available else "; with no insightface detector either, faces cannot be found"
    try:
        import dlib

        path = predictor_path()
        DlibBackend()
    except VExpressError as error:
        return Check("dlib backend", status, join(error.what, error.why).raw.rstrip(".") + consequence, error.fix)
    except Exception as error:
        return Check("dlib backend", status, f"dlib cannot be loaded ({describe(error)}){consequence}",
                     "pip install --force-reinstall dlib-bin face_recognition_models")
    return Check("dlib backend", OK, f"dlib {getattr(dlib, '__version__', '?')}, predictor {path} "
                 f"({human_size(path.stat().st_size)})")

