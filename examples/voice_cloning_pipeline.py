"""Voice cloning: find the target speaker in long recordings (diarization +
speaker-embedding match), cut and transcribe their clips into an LJSpeech-style
dataset, then train a VITS voice on a GPU when there is enough speech.
"""

from kfp import dsl, kubernetes
from kfp.dsl import Dataset, Input, Metrics, Model, Output

TORCH_IMAGE = "pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime"
PYTHON_IMAGE = "python:3.11.9-slim-bookworm"
RECORDINGS_MOUNT = "/mnt/recordings"


@dsl.component(
    base_image=TORCH_IMAGE,
    packages_to_install=[
        "pyannote.audio==3.3.1",
        "faster-whisper==1.0.3",
        "soundfile==0.12.1",
        "numpy==1.26.4",
    ],
)
def extract_speaker(
    recordings_root: str,
    speaker_dir: str,
    reference_clip: str,
    clips: Output[Dataset],
    similarity_threshold: float = 0.72,
    min_clip_seconds: float = 1.5,
    max_clip_seconds: float = 12.0,
    language: str = "en",
) -> float:
    """Diarize every recording, keep turns whose voice matches the reference clip,
    and write them as 22.05 kHz WAVs with a metadata.csv (LJSpeech layout).

    Returns the minutes of speech kept.
    """
    import csv
    import os

    import numpy as np
    import soundfile as sf
    import torch
    from faster_whisper import WhisperModel
    from pyannote.audio import Inference, Model as EmbeddingModel, Pipeline
    from pyannote.core import Segment

    recordings_dir = os.path.join(recordings_root, speaker_dir)
    token = os.environ["HF_TOKEN"]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    diarization = Pipeline.from_pretrained("pyannote/speaker-diarization-3.1", use_auth_token=token).to(device)
    embedder = Inference(
        EmbeddingModel.from_pretrained("pyannote/wespeaker-voxceleb-resnet34-LM", use_auth_token=token),
        window="whole",
        device=device,
    )
    asr = WhisperModel("medium", device=device.type, compute_type="float16" if device.type == "cuda" else "int8")

    reference = embedder(os.path.join(recordings_dir, reference_clip))
    reference = reference / np.linalg.norm(reference)

    wavs = os.path.join(clips.path, "wavs")
    os.makedirs(wavs, exist_ok=True)
    kept_seconds = 0.0
    with open(os.path.join(clips.path, "metadata.csv"), "w", newline="", encoding="utf-8") as meta:
        writer = csv.writer(meta, delimiter="|", quoting=csv.QUOTE_NONE, escapechar="\\")
        for name in sorted(os.listdir(recordings_dir)):
            if name == reference_clip or not name.lower().endswith((".wav", ".flac", ".mp3")):
                continue
            path = os.path.join(recordings_dir, name)
            audio, rate = sf.read(path, dtype="float32", always_2d=True)
            audio = audio.mean(axis=1)
            for n, (turn, _, _) in enumerate(diarization(path).itertracks(yield_label=True)):
                if not min_clip_seconds <= turn.duration <= max_clip_seconds:
                    continue
                vector = embedder.crop(path, Segment(turn.start, turn.end))
                if float(np.dot(vector / np.linalg.norm(vector), reference)) < similarity_threshold:
                    continue
                piece = audio[int(turn.start * rate) : int(turn.end * rate)]
                clip_id = f"{os.path.splitext(name)[0]}_{n:05d}"
                clip_path = os.path.join(wavs, f"{clip_id}.wav")
                sf.write(clip_path, piece, rate)
                segments, _ = asr.transcribe(clip_path, language=language, beam_size=5)
                text = " ".join(segment.text.strip() for segment in segments).strip()
                if not text:
                    os.remove(clip_path)
                    continue
                writer.writerow([clip_id, text, text])
                kept_seconds += turn.duration
    clips.metadata["minutes"] = kept_seconds / 60
    return kept_seconds / 60


@dsl.component(
    base_image=TORCH_IMAGE,
    packages_to_install=["TTS==0.22.0"],
)
def train_vits(
    clips: Input[Dataset],
    voice: Output[Model],
    metrics: Output[Metrics],
    voice_name: str,
    epochs: int = 1000,
    batch_size: int = 24,
    language: str = "en",
):
    """Train a single-speaker VITS model (Coqui TTS) on the clip dataset."""
    import os

    from trainer import Trainer, TrainerArgs
    from TTS.tts.configs.shared_configs import BaseDatasetConfig
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.datasets import load_tts_samples
    from TTS.tts.models.vits import Vits
    from TTS.tts.utils.text.tokenizer import TTSTokenizer
    from TTS.utils.audio import AudioProcessor

    dataset = BaseDatasetConfig(formatter="ljspeech", meta_file_train="metadata.csv", path=clips.path, language=language)
    config = VitsConfig(
        run_name=voice_name,
        batch_size=batch_size,
        eval_batch_size=8,
        epochs=epochs,
        text_cleaner="english_cleaners" if language == "en" else "multilingual_cleaners",
        use_phonemes=True,
        phoneme_language="en-us" if language == "en" else language,
        phoneme_cache_path=os.path.join(voice.path, "phoneme_cache"),
        mixed_precision=True,
        output_path=voice.path,
        datasets=[dataset],
        save_step=5000,
        save_n_checkpoints=2,
        print_step=100,
    )
    audio = AudioProcessor.init_from_config(config)
    tokenizer, config = TTSTokenizer.init_from_config(config)
    train_samples, eval_samples = load_tts_samples(dataset, eval_split=True, eval_split_size=0.02)
    model = Vits(config, audio, tokenizer, speaker_manager=None)
    trainer = Trainer(TrainerArgs(), config, voice.path, model=model, train_samples=train_samples, eval_samples=eval_samples)
    trainer.fit()

    voice.metadata["voice"] = voice_name
    voice.metadata["framework"] = "coqui-tts-vits"
    metrics.log_metric("train_samples", float(len(train_samples)))
    metrics.log_metric("eval_samples", float(len(eval_samples)))
    if trainer.keep_avg_eval is not None:
        for key, value in trainer.keep_avg_eval.avg_values.items():
            metrics.log_metric(key.replace("avg_", "eval_"), float(value))


@dsl.component(base_image=PYTHON_IMAGE, packages_to_install=["requests==2.32.3"])
def report_insufficient_speech(voice_name: str, minutes: float, minimum: float, ntfy_topic_url: str):
    """Tell the requester that more recordings are needed."""
    import requests

    requests.post(
        ntfy_topic_url,
        data=f"Voice '{voice_name}': only {minutes:.1f} min of matching speech, need {minimum:.0f}. Add recordings.".encode(),
        headers={"Title": "Voice cloning skipped", "Tags": "warning"},
        timeout=30,
    ).raise_for_status()


@dsl.pipeline(
    name="voice-cloning",
    description="Extract one speaker's clips from recordings, then train a VITS voice.",
)
def voice_cloning(
    voice_name: str = "narrator-anna",
    recordings_pvc: str = "voice-recordings",
    recordings_subdir: str = "anna",
    reference_clip: str = "reference.wav",
    min_minutes: float = 30.0,
    epochs: int = 1000,
    language: str = "en",
    ntfy_topic_url: str = "https://ntfy.example.com/voice-cloning",
):
    speaker = extract_speaker(
        recordings_root=RECORDINGS_MOUNT,
        speaker_dir=recordings_subdir,
        reference_clip=reference_clip,
        language=language,
    )
    speaker.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
    speaker.set_memory_limit("16G")
    speaker.set_retry(num_retries=1)
    kubernetes.mount_pvc(speaker, pvc_name=recordings_pvc, mount_path=RECORDINGS_MOUNT)
    kubernetes.use_secret_as_env(speaker, secret_name="huggingface-token", secret_key_to_env={"token": "HF_TOKEN"})

    with dsl.If(speaker.outputs["Output"] >= min_minutes, name="enough-speech"):
        train = train_vits(
            clips=speaker.outputs["clips"],
            voice_name=voice_name,
            epochs=epochs,
            language=language,
        )
        train.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(2)
        train.set_cpu_limit("16").set_memory_limit("64G")
        train.set_caching_options(enable_caching=True)
        kubernetes.add_toleration(train, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
    with dsl.Else(name="not-enough-speech"):
        report = report_insufficient_speech(
            voice_name=voice_name,
            minutes=speaker.outputs["Output"],
            minimum=min_minutes,
            ntfy_topic_url=ntfy_topic_url,
        )
        report.set_caching_options(enable_caching=False)
