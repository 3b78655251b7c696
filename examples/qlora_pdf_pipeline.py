"""QLoRA fine-tuning on a PDF corpus: download PDFs from S3, turn them into a
text dataset, fine-tune a 4-bit quantised base model with LoRA adapters on a GPU,
and measure held-out perplexity.

S3 credentials come from the Kubernetes secret `s3-credentials` (kfp-kubernetes),
so the compiled YAML carries a second document: the platform spec.
"""

from kfp import dsl, kubernetes
from kfp.dsl import Dataset, Input, Metrics, Model, Output

PYTHON_IMAGE = "python:3.11.9-slim-bookworm"
TRAIN_IMAGE = "nvcr.io/nvidia/pytorch:24.05-py3"
S3_SECRET = "s3-credentials"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL",
}


@dsl.component(base_image=PYTHON_IMAGE, packages_to_install=["boto3==1.34.149"])
def download_pdfs(bucket: str, prefix: str, pdfs: Output[Dataset], max_files: int = 0) -> int:
    """Download every PDF under s3://bucket/prefix into the output directory."""
    import os

    import boto3

    s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    os.makedirs(pdfs.path, exist_ok=True)
    count = 0
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if not key.lower().endswith(".pdf"):
                continue
            target = os.path.join(pdfs.path, key[len(prefix):].lstrip("/").replace("/", "__"))
            s3.download_file(bucket, key, target)
            count += 1
            if max_files and count >= max_files:
                break
        if max_files and count >= max_files:
            break
    if count == 0:
        raise RuntimeError(f"no PDF under s3://{bucket}/{prefix}")
    pdfs.metadata["files"] = count
    return count


@dsl.component(
    base_image=PYTHON_IMAGE,
    packages_to_install=["pypdf==4.3.1", "datasets==2.20.0"],
)
def build_dataset(
    pdfs: Input[Dataset],
    train: Output[Dataset],
    validation: Output[Dataset],
    block_chars: int = 2000,
    validation_fraction: float = 0.05,
    seed: int = 17,
):
    """Extract text page by page, pack it into blocks and split train/validation."""
    import os
    import re

    from datasets import Dataset as HFDataset
    from pypdf import PdfReader

    records = []
    for name in sorted(os.listdir(pdfs.path)):
        reader = PdfReader(os.path.join(pdfs.path, name))
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
        text = re.sub(r"[ \t]+", " ", text)
        text = re.sub(r"\n{3,}", "\n\n", text).strip()
        for start in range(0, len(text), block_chars):
            block = text[start : start + block_chars]
            if len(block) > block_chars // 4:
                records.append({"source": name, "text": block})
    split = HFDataset.from_list(records).train_test_split(test_size=validation_fraction, seed=seed)
    split["train"].save_to_disk(train.path)
    split["test"].save_to_disk(validation.path)
    train.metadata["rows"] = len(split["train"])
    validation.metadata["rows"] = len(split["test"])


@dsl.component(
    base_image=TRAIN_IMAGE,
    packages_to_install=[
        "transformers==4.43.3",
        "peft==0.12.0",
        "bitsandbytes==0.43.3",
        "accelerate==0.33.0",
        "datasets==2.20.0",
    ],
)
def qlora_finetune(
    train: Input[Dataset],
    base_model: str,
    adapter: Output[Model],
    epochs: int = 2,
    learning_rate: float = 2e-4,
    lora_rank: int = 16,
    lora_alpha: int = 32,
    max_length: int = 1024,
):
    """Fine-tune LoRA adapters on top of the 4-bit NF4-quantised base model."""
    import torch
    from datasets import load_from_disk
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        BitsAndBytesConfig,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    model = AutoModelForCausalLM.from_pretrained(base_model, quantization_config=quantization, device_map="auto")
    model = prepare_model_for_kbit_training(model)
    model = get_peft_model(
        model,
        LoraConfig(
            r=lora_rank,
            lora_alpha=lora_alpha,
            lora_dropout=0.05,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            task_type="CAUSAL_LM",
        ),
    )

    dataset = load_from_disk(train.path).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length),
        batched=True,
        remove_columns=["source", "text"],
    )
    trainer = Trainer(
        model=model,
        train_dataset=dataset,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        args=TrainingArguments(
            output_dir="/tmp/qlora",
            num_train_epochs=epochs,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=4,
            learning_rate=learning_rate,
            lr_scheduler_type="cosine",
            warmup_ratio=0.03,
            bf16=True,
            logging_steps=10,
            save_strategy="no",
            report_to=[],
        ),
    )
    result = trainer.train()
    model.save_pretrained(adapter.path)
    tokenizer.save_pretrained(adapter.path)
    adapter.metadata["base_model"] = base_model
    adapter.metadata["lora_rank"] = lora_rank
    adapter.metadata["train_loss"] = float(result.training_loss)


@dsl.component(
    base_image=TRAIN_IMAGE,
    packages_to_install=["transformers==4.43.3", "peft==0.12.0", "bitsandbytes==0.43.3", "datasets==2.20.0"],
)
def evaluate_perplexity(
    adapter: Input[Model],
    validation: Input[Dataset],
    metrics: Output[Metrics],
    max_length: int = 1024,
):
    """Held-out perplexity of the adapted model."""
    import math

    import torch
    from datasets import load_from_disk
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter.path)
    model = AutoPeftModelForCausalLM.from_pretrained(adapter.path, load_in_4bit=True, device_map="auto")
    model.eval()
    total_loss, total_tokens = 0.0, 0
    for row in load_from_disk(validation.path):
        encoded = tokenizer(row["text"], return_tensors="pt", truncation=True, max_length=max_length).to(model.device)
        with torch.no_grad():
            loss = model(**encoded, labels=encoded["input_ids"]).loss
        tokens = int(encoded["input_ids"].numel())
        total_loss += float(loss) * tokens
        total_tokens += tokens
    mean = total_loss / max(total_tokens, 1)
    metrics.log_metric("validation_loss", mean)
    metrics.log_metric("perplexity", math.exp(mean))
    metrics.log_metric("validation_tokens", float(total_tokens))


@dsl.component(base_image=PYTHON_IMAGE, packages_to_install=["boto3==1.34.149"])
def upload_adapter(adapter: Input[Model], bucket: str, prefix: str) -> str:
    """Upload the adapter directory to S3 and return its URI."""
    import os

    import boto3

    s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    for root, _, files in os.walk(adapter.path):
        for name in files:
            local = os.path.join(root, name)
            key = f"{prefix.rstrip('/')}/{os.path.relpath(local, adapter.path)}"
            s3.upload_file(local, bucket, key)
    return f"s3://{bucket}/{prefix.rstrip('/')}/"


@dsl.pipeline(
    name="qlora-pdf-finetune",
    description="PDFs from S3 -> dataset -> QLoRA fine-tune on a GPU -> perplexity; adapter back to S3.",
)
def qlora_pdf(
    bucket: str = "ml-corpora",
    pdf_prefix: str = "manuals/2024/",
    base_model: str = "mistralai/Mistral-7B-v0.3",
    adapter_prefix: str = "adapters/manuals-mistral-7b",
    epochs: int = 2,
    learning_rate: float = 2e-4,
    lora_rank: int = 16,
):
    download = download_pdfs(bucket=bucket, prefix=pdf_prefix)
    download.set_retry(num_retries=3, backoff_duration="20s", backoff_factor=2.0)
    download.set_caching_options(enable_caching=False)
    kubernetes.use_secret_as_env(download, secret_name=S3_SECRET, secret_key_to_env=S3_ENV)

    dataset = build_dataset(pdfs=download.outputs["pdfs"])
    dataset.set_cpu_limit("4").set_memory_limit("8G")
    dataset.set_caching_options(enable_caching=True)

    finetune = qlora_finetune(
        train=dataset.outputs["train"],
        base_model=base_model,
        epochs=epochs,
        learning_rate=learning_rate,
        lora_rank=lora_rank,
    )
    finetune.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
    finetune.set_cpu_limit("8").set_memory_limit("48G")
    finetune.set_caching_options(enable_caching=True)
    kubernetes.use_secret_as_env(finetune, secret_name="huggingface-token", secret_key_to_env={"token": "HF_TOKEN"})
    kubernetes.add_toleration(finetune, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
    kubernetes.empty_dir_mount(finetune, volume_name="dshm", mount_path="/dev/shm", medium="Memory")

    perplexity = evaluate_perplexity(adapter=finetune.outputs["adapter"], validation=dataset.outputs["validation"])
    perplexity.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
    perplexity.set_memory_limit("32G")

    upload = upload_adapter(adapter=finetune.outputs["adapter"], bucket=bucket, prefix=adapter_prefix)
    upload.after(perplexity)
    upload.set_retry(num_retries=3)
    kubernetes.use_secret_as_env(upload, secret_name=S3_SECRET, secret_key_to_env=S3_ENV)
