"""DVD transcription: pull the DVD image's main title audio out of its VOB files
onto a scratch volume, then transcribe it with Whisper on a GPU.

The ISO images live on a shared media-library volume; the intermediate audio goes
to a per-run PVC that is deleted once the transcript exists.
"""

from kfp import dsl, kubernetes
from kfp.dsl import Dataset, Output

PYTHON_IMAGE = "python:3.11.9-slim-bookworm"
TORCH_IMAGE = "pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime"
MEDIA_MOUNT = "/mnt/media"
SCRATCH_MOUNT = "/mnt/scratch"


@dsl.component(
    base_image=PYTHON_IMAGE,
    packages_to_install=["pycdlib==1.14.0", "imageio-ffmpeg==0.5.1"],
)
def extract_audio(
    media_dir: str,
    iso_file: str,
    scratch_dir: str,
    sample_rate: int = 16000,
    min_title_mb: int = 200,
) -> str:
    """Copy the largest title set's VOBs out of the ISO and decode them to mono WAV."""
    import collections
    import os
    import re
    import subprocess

    import imageio_ffmpeg
    import pycdlib

    iso_path = os.path.join(media_dir, iso_file)
    iso = pycdlib.PyCdlib()
    iso.open(iso_path)
    try:
        facade = iso.get_udf_facade() if iso.has_udf() else iso.get_iso9660_facade()
        titles = collections.defaultdict(list)
        for child in facade.list_children("/VIDEO_TS"):
            name = child.file_identifier().decode("ascii", "replace").split(";")[0].upper()
            match = re.fullmatch(r"VTS_(\d\d)_([1-9])\.VOB", name)
            if match:
                titles[match.group(1)].append((name, child.get_data_length()))
        if not titles:
            raise RuntimeError(f"{iso_path}: no VTS_xx_n.VOB files under VIDEO_TS")
        title, parts = max(titles.items(), key=lambda item: sum(size for _, size in item[1]))
        if sum(size for _, size in parts) < min_title_mb * 1024 * 1024:
            raise RuntimeError(f"{iso_path}: largest title set VTS_{title} is smaller than {min_title_mb} MB")

        work = os.path.join(scratch_dir, f"vts_{title}")
        os.makedirs(work, exist_ok=True)
        vob = os.path.join(work, "title.vob")
        with open(vob, "wb") as out:
            for name, _ in sorted(parts):
                iso_name = f"/VIDEO_TS/{name}"
                if iso.has_udf():
                    iso.get_file_from_iso_fp(out, udf_path=iso_name)
                else:
                    iso.get_file_from_iso_fp(out, iso_path=f"{iso_name};1")
    finally:
        iso.close()

    wav = os.path.join(work, "audio.wav")
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-y",
            "-i", vob,
            "-map", "0:a:0",
            "-ac", "1",
            "-ar", str(sample_rate),
            "-c:a", "pcm_s16le",
            wav,
        ],
        check=True,
    )
    os.remove(vob)
    return wav


@dsl.component(
    base_image=TORCH_IMAGE,
    packages_to_install=["openai-whisper==20231117", "numpy==1.26.4"],
)
def transcribe(
    wav_path: str,
    transcript: Output[Dataset],
    subtitles: Output[Dataset],
    model_size: str = "large-v3",
    language: str = "",
):
    """Transcribe the WAV with Whisper; write JSON segments and an SRT file."""
    import json
    import wave

    import numpy as np
    import torch
    import whisper

    with wave.open(wav_path, "rb") as handle:
        if handle.getframerate() != 16000 or handle.getnchannels() != 1:
            raise ValueError(f"{wav_path}: expected 16 kHz mono, got {handle.getframerate()} Hz x {handle.getnchannels()}")
        frames = handle.readframes(handle.getnframes())
    audio = np.frombuffer(frames, dtype=np.int16).astype(np.float32) / 32768.0

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = whisper.load_model(model_size, device=device)
    result = model.transcribe(
        audio,
        language=language or None,
        fp16=device == "cuda",
        condition_on_previous_text=False,
        verbose=False,
    )

    with open(transcript.path, "w", encoding="utf-8") as out:
        json.dump({"language": result["language"], "text": result["text"], "segments": result["segments"]}, out)

    def stamp(seconds: float) -> str:
        millis = int(round(seconds * 1000))
        hours, millis = divmod(millis, 3_600_000)
        minutes, millis = divmod(millis, 60_000)
        secs, millis = divmod(millis, 1000)
        return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"

    with open(subtitles.path, "w", encoding="utf-8") as out:
        for index, segment in enumerate(result["segments"], start=1):
            out.write(f"{index}\n{stamp(segment['start'])} --> {stamp(segment['end'])}\n{segment['text'].strip()}\n\n")

    transcript.metadata["language"] = result["language"]
    transcript.metadata["segments"] = len(result["segments"])
    transcript.metadata["model"] = model_size
    subtitles.metadata["format"] = "srt"


@dsl.pipeline(
    name="dvd-transcription",
    description="Extract a DVD's main-title audio and transcribe it with Whisper.",
)
def dvd_transcription(
    iso_file: str = "archive/lectures-2009/disc01.iso",
    whisper_model: str = "large-v3",
    language: str = "",
    media_pvc: str = "media-library",
):
    scratch = kubernetes.CreatePVC(
        pvc_name_suffix="-dvd-scratch",
        access_modes=["ReadWriteOnce"],
        size="20Gi",
        storage_class_name="standard",
    )

    extract = extract_audio(
        media_dir=MEDIA_MOUNT,
        iso_file=iso_file,
        scratch_dir=SCRATCH_MOUNT,
    )
    extract.set_retry(num_retries=2, backoff_duration="60s")
    extract.set_cpu_limit("2").set_memory_limit("2G")
    kubernetes.mount_pvc(extract, pvc_name=media_pvc, mount_path=MEDIA_MOUNT)
    kubernetes.mount_pvc(extract, pvc_name=scratch.outputs["name"], mount_path=SCRATCH_MOUNT)

    text = transcribe(wav_path=extract.output, model_size=whisper_model, language=language)
    text.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
    text.set_memory_limit("24G")
    # Whisper on a full DVD takes a while: reuse the transcript when nothing changed.
    text.set_caching_options(enable_caching=True)
    kubernetes.mount_pvc(text, pvc_name=scratch.outputs["name"], mount_path=SCRATCH_MOUNT)
    kubernetes.add_toleration(text, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")

    cleanup = kubernetes.DeletePVC(pvc_name=scratch.outputs["name"]).after(text)
    cleanup.set_caching_options(enable_caching=False)
