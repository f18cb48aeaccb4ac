"""Reading cine MRI from NIfTI (nibabel): a 4D (x, y, z, t) volume, a 3D (x, y, t) single-slice
sequence, a folder of frames, or an ACDC-style patient folder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..files import replaced_atomically
from .cine import Cine

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _nibabel():
    try:
        import nibabel
    except ImportError as exc:  # pragma: no cover - nibabel is a dependency of motionext
        raise ImportError("reading NIfTI needs nibabel: pip install nibabel") from exc
    return nibabel


def _load(path) -> "object":
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such NIfTI file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a NIfTI file")
    try:
        return _nibabel().load(str(path))
    except Exception as exc:  # nibabel raises many kinds for a file that is not NIfTI
        raise ValueError(f"cannot read {path} as NIfTI: {exc}") from exc


def _read(path, dtype=np.float32):
    """(voxels as `dtype`, the nibabel image) of a NIfTI file; a truncated or damaged file, or one
    whose voxels are not real numbers (RGB, complex), is refused with its name."""
    image = _load(path)
    stored = np.dtype(image.get_data_dtype())
    if stored.kind not in "biuf" or stored.fields is not None:
        raise ValueError(f"{path}: voxels of type {stored} are not real numbers; motionext reads integer or "
                         "floating-point images")
    try:
        return np.asarray(image.dataobj, dtype=dtype), image
    except Exception as exc:  # EOFError, zlib.error, OSError...: the header promised more than the file holds
        raise ValueError(f"{path}: the image data cannot be read (truncated or damaged file?): "
                         f"{type(exc).__name__}: {exc}") from exc


# NIfTI's xyzt_units: what one unit of pixdim and of the sform/qform is, in mm. "unknown" (0) is
# read as mm, as ITK, FSL and nibabel's own tools read it.
_MM_PER_UNIT = {"meter": 1000.0, "mm": 1.0, "micron": 0.001, "unknown": 1.0}


def _mm_per_unit(header) -> float:
    """How many mm one of the header's spatial units is (Analyze headers have no unit: mm)."""
    if not hasattr(header, "get_xyzt_units"):
        return 1.0
    return _MM_PER_UNIT.get(header.get_xyzt_units()[0], 1.0)


def _spacing(path, image, count: int) -> tuple:
    """The first `count` voxel sizes of the header in mm, refused unless positive and finite.
    Read from the header as stored: nibabel's load replaces a zero size by 1 (with only a log
    message). A header in metres or microns (xyzt_units) is converted."""
    from nibabel.openers import ImageOpener

    try:
        with ImageOpener(str(path)) as f:
            header = type(image.header).from_fileobj(f, check=False)
    except Exception:  # a header in a file of its own (Analyze .hdr/.img): as nibabel read it
        header = image.header
    zooms = tuple(float(z) * _mm_per_unit(header) for z in header.get_zooms()[:count])
    if len(zooms) < count or not all(np.isfinite(z) and z > 0 for z in zooms):
        raise ValueError(f"{path}: the header's voxel spacing {zooms} is not {count} positive sizes in mm; "
                         "fix the header (pixdim)")
    return zooms


def _affine(path, image) -> np.ndarray:
    """The header's voxel-to-world matrix in mm, refused unless finite and invertible: outputs are
    written on the input's grid through its inverse."""
    affine = np.asarray(image.affine, dtype=float).copy()
    affine[:3] *= _mm_per_unit(image.header)
    axes = np.linalg.norm(affine[:3, :3], axis=0)
    # |det| against the product of the axes' lengths: near 0 for a zero or a repeated axis, at any scale
    if not np.isfinite(affine).all() or not axes.all() or abs(np.linalg.det(affine[:3, :3])) < 1e-6 * axes.prod():
        raise ValueError(f"{path}: the header's voxel-to-world matrix (sform/qform) is not invertible: "
                         f"{affine[:3].round(3).tolist()}; fix the header")
    return affine


def read_cine(path, *, ed: int = 0, es: int | None = None, labels: dict | None = None) -> Cine:
    """Read a cine from one NIfTI file and rotate it so frame `ed` comes first.

    A 4D file is (x, y, z, t): frames come back as (T, x, y, z); take 2D slices with
    ``cine.slice(k)``. A 3D file is read as one slice over time, (x, y, t) -> (T, x, y).
    ``labels`` maps source frame indices to label NIfTI paths on the same grid.
    """
    data, image = _read(path)
    affine = _affine(path, image)
    if data.ndim == 4:
        frames, spacing = np.moveaxis(data, 3, 0), _spacing(path, image, 3)
    elif data.ndim == 3:
        frames, spacing = np.moveaxis(data, 2, 0), _spacing(path, image, 2)
    else:
        raise ValueError(f"{path}: a cine must be a 4D (x, y, z, t) or 3D (x, y, t) NIfTI; got shape {data.shape}")
    if frames.shape[0] < 2:
        raise ValueError(f"{path}: a cine needs at least 2 frames; got {frames.shape[0]}")
    if not np.isfinite(frames).all():
        raise ValueError(f"{path}: the image contains NaN or Inf values")
    label_maps = _read_labels(labels or {}, frames.shape[1:])
    cine = Cine(frames, spacing, affine, label_maps, es=es, name=Path(path).name.split(".")[0])
    return cine.with_ed_first(ed) if ed else cine


def _read_labels(paths: dict, shape) -> dict:
    """Frame index -> uint8 label map, read from the NIfTI `paths` (frame index -> path), each
    on the frames' grid of `shape`."""
    maps = {}
    for t, path in paths.items():
        label = _read(path, dtype=np.float64)[0]
        if label.shape != tuple(shape):
            raise ValueError(f"{path}: labels of shape {label.shape} do not match the cine frames {tuple(shape)}")
        finite = np.isfinite(label)
        if not finite.all() or label.min() < 0 or label.max() > 255:
            values = label[finite]
            span = f"values from {values.min()} to {values.max()}" if values.size else "no finite values"
            raise ValueError(f"{path}: a label map holds integers 0-255; got {span}"
                             f"{'' if finite.all() else ' and NaN/Inf'}")
        fractional = np.abs(label - np.rint(label)) > 1e-3
        if fractional.any():  # an image given as labels, or labels resampled with interpolation
            raise ValueError(f"{path}: a label map holds integers; {int(fractional.sum())} voxels are not "
                             f"(e.g. {label[fractional][0]:g}): is it an image, or labels resampled linearly?")
        maps[int(t)] = np.rint(label).astype(np.uint8)
    return maps


def read_frames(folder, *, ed: int = 0) -> Cine:
    """Read a folder of per-frame NIfTI files (2D or 3D each), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.name.endswith(NIFTI_SUFFIXES))
    if len(paths) < 2:
        raise ValueError(f"{folder}: a cine needs at least 2 NIfTI frames; found {len(paths)}")
    arrays, images = zip(*[_read(p) for p in paths])
    arrays = [a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a for a in arrays]
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError(f"{folder}: frames differ in shape: {sorted({a.shape for a in arrays})}")
    if arrays[0].ndim not in (2, 3):
        raise ValueError(f"{folder}: each frame must be 2D or 3D; got {arrays[0].shape}")
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError(f"{folder}: a frame contains NaN or Inf values")
    spacing = _spacing(paths[0], images[0], arrays[0].ndim)
    cine = Cine(np.stack(arrays), spacing, _affine(paths[0], images[0]), name=folder.name)
    return cine.with_ed_first(ed) if ed else cine


def _read_info(path: Path) -> dict:
    info = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    return info


def _info_frame(info: dict, key: str, info_path: Path) -> int:
    try:
        return int(info[key])
    except (KeyError, ValueError):
        raise ValueError(f"{info_path}: needs an integer '{key}:' line; got {info}") from None


# ACDC's file names: a patient's cine, and the labels of one frame (1-based) of it
ACDC_CINE_NAME = re.compile(r"_4d\.nii(\.gz)?$")
ACDC_LABEL_NAME = re.compile(r"_frame(\d+)_gt")


def acdc_info_beside(path) -> Path | None:
    """The ``Info.cfg`` beside ``path`` where it is an ACDC patient's cine (``patientXXX_4d.nii.gz``),
    or None."""
    path = Path(path)
    info_path = path.parent / "Info.cfg"
    return info_path if ACDC_CINE_NAME.search(path.name) and info_path.is_file() else None


def acdc_ed_index(path) -> int | None:
    """The 0-based ED frame that the ``Info.cfg`` beside an ACDC cine names (acdc_info_beside);
    None for any other file."""
    info_path = acdc_info_beside(path)
    return None if info_path is None else _info_frame(_read_info(info_path), "ED", info_path) - 1


def acdc_label_frame(path) -> int | None:
    """The 0-based frame whose labels an ACDC label file holds by its name
    (``patientXXX_frameYY_gt.nii.gz``), or None."""
    match = ACDC_LABEL_NAME.search(Path(path).name)
    return int(match.group(1)) - 1 if match else None


def read_acdc_patient(folder) -> Cine:
    """An ACDC-style patient folder: ``Info.cfg`` (1-based ED/ES frames, NbFrame) with either the
    full cine ``patientXXX_4d.nii.gz`` or only the ED and ES frames ``patientXXX_frameYY.nii.gz``
    (as ACDC's testing set is often shared), and ``patientXXX_frameYY_gt.nii.gz`` labels.

    The cine comes back with ED first. From ED and ES frames alone it is a sparse 2-frame
    sequence: ED at phase 0 and ES at its true phase (ES - ED) / NbFrame (`Cine.times`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such patient folder: {folder}")
    info_path = folder / "Info.cfg"
    if not info_path.exists():
        raise FileNotFoundError(f"{folder}: no Info.cfg with the ED and ES frames")
    info = _read_info(info_path)
    ed, es = _info_frame(info, "ED", info_path) - 1, _info_frame(info, "ES", info_path) - 1
    labels = {}
    for path in folder.glob("*_frame*_gt.nii*"):
        frame = acdc_label_frame(path)
        if frame is not None:
            labels[frame] = path
    cines = sorted(folder.glob("*_4d.nii*"))
    if not cines:
        return _read_ed_es_frames(folder, info_path, ed, es, _info_frame(info, "NbFrame", info_path), labels)
    cine = read_cine(cines[0], es=es, labels=labels)
    if not 0 <= ed < cine.num_frames or not 0 <= es < cine.num_frames:
        raise ValueError(f"{info_path}: ED {ed + 1} / ES {es + 1} outside the {cine.num_frames} frames")
    return cine.with_ed_first(ed)


def _read_ed_es_frames(folder: Path, info_path: Path, ed: int, es: int, count: int, labels: dict) -> Cine:
    """The ED and ES volumes of a patient folder without its 4D cine, as a sparse (ED, ES) sequence."""
    if not 0 <= ed < count or not 0 <= es < count or ed == es:
        raise ValueError(f"{info_path}: ED {ed + 1} and ES {es + 1} must be two different frames of NbFrame {count}")
    volumes, label_maps = [], {}
    for index, frame in enumerate((ed, es)):
        paths = [p for p in sorted(folder.glob(f"*_frame{frame + 1:02d}.nii*")) if "_gt" not in p.name]
        if not paths:
            raise FileNotFoundError(f"{folder}: no *_4d.nii(.gz) cine and no frame {frame + 1:02d} "
                                    f"(*_frame{frame + 1:02d}.nii.gz) for {'ED' if index == 0 else 'ES'}")
        volumes.append((paths[0], *_read(paths[0])))
        if frame in labels:
            label_maps[index] = labels[frame]
    arrays = [array for _, array, _ in volumes]
    if arrays[0].ndim != 3 or arrays[0].shape != arrays[1].shape:
        raise ValueError(f"{folder}: the ED and ES frames must be 3D volumes of one shape; "
                         f"got {arrays[0].shape} and {arrays[1].shape}")
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError(f"{folder}: the ED or ES frame contains NaN or Inf values")
    maps = _read_labels(label_maps, arrays[0].shape)
    path, _, image = volumes[0]
    return Cine(np.stack(arrays), _spacing(path, image, 3), _affine(path, image), maps, es=1,
                name=folder.name, times=(0.0, ((es - ed) % count) / count))


def save_nifti(path, array, affine=None, *, spacing=None, intent=None) -> Path:
    """Write an array as NIfTI whose world units are mm (written to a temporary name, then
    renamed: no partial files). `intent` e.g. "vector" for displacement fields."""
    nib = _nibabel()
    path = Path(path)
    if affine is None:
        diagonal = list(spacing or [])[:3]
        affine = np.diag(diagonal + [1.0] * (4 - len(diagonal)))
    image = nib.Nifti1Image(np.asarray(array), affine)
    image.header.set_xyzt_units(xyz="mm")
    if spacing is not None:
        image.header.set_zooms(tuple(spacing) + image.header.get_zooms()[len(spacing):])
    if intent is not None:
        image.header.set_intent(intent)
    with replaced_atomically(path) as tmp:
        nib.save(image, str(tmp))
    return path
