"""RAG document ingestion: fetch documents, chunk them, embed the chunks, upsert
the vectors into Qdrant, and log the run's parameters and metrics to MLflow.

An exit handler reports the final status to MLflow even when a step fails.
"""

from kfp import dsl, kubernetes
from kfp.dsl import Dataset, Input, Metrics, Output, PipelineTaskFinalStatus

PYTHON_IMAGE = "python:3.11.9-slim-bookworm"
TORCH_IMAGE = "pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime"


@dsl.component(
    base_image=PYTHON_IMAGE,
    packages_to_install=["requests==2.32.3", "beautifulsoup4==4.12.3", "pypdf==4.3.1"],
)
def fetch_documents(source_urls: list, documents: Output[Dataset]) -> int:
    """Download every source URL and store its text as one JSON line per document."""
    import hashlib
    import io
    import json

    import requests
    from bs4 import BeautifulSoup
    from pypdf import PdfReader

    count = 0
    with open(documents.path, "w", encoding="utf-8") as out:
        for url in source_urls:
            response = requests.get(url, timeout=60)
            response.raise_for_status()
            content_type = response.headers.get("content-type", "")
            if "pdf" in content_type or url.lower().endswith(".pdf"):
                reader = PdfReader(io.BytesIO(response.content))
                text = "\n".join(page.extract_text() or "" for page in reader.pages)
            else:
                soup = BeautifulSoup(response.text, "html.parser")
                for tag in soup(["script", "style", "nav", "footer"]):
                    tag.decompose()
                text = soup.get_text("\n", strip=True)
            doc_id = hashlib.sha256(url.encode()).hexdigest()[:16]
            out.write(json.dumps({"id": doc_id, "source": url, "text": text}) + "\n")
            count += 1
    documents.metadata["documents"] = count
    return count


@dsl.component(base_image=PYTHON_IMAGE, packages_to_install=["tiktoken==0.7.0"])
def chunk_documents(
    documents: Input[Dataset],
    chunks: Output[Dataset],
    chunk_tokens: int = 512,
    overlap_tokens: int = 64,
) -> int:
    """Split each document into overlapping token windows."""
    import json

    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base")
    step = max(1, chunk_tokens - overlap_tokens)
    total = 0
    with open(documents.path, encoding="utf-8") as src, open(chunks.path, "w", encoding="utf-8") as out:
        for line in src:
            doc = json.loads(line)
            tokens = encoding.encode(doc["text"])
            for n, start in enumerate(range(0, max(len(tokens), 1), step)):
                window = tokens[start : start + chunk_tokens]
                if not window:
                    break
                out.write(
                    json.dumps(
                        {
                            "id": f"{doc['id']}-{n:05d}",
                            "doc_id": doc["id"],
                            "source": doc["source"],
                            "text": encoding.decode(window),
                        }
                    )
                    + "\n"
                )
                total += 1
    chunks.metadata["chunks"] = total
    return total


@dsl.component(base_image=TORCH_IMAGE, packages_to_install=["sentence-transformers==3.0.1"])
def embed_chunks(
    chunks: Input[Dataset],
    embeddings: Output[Dataset],
    model_name: str = "BAAI/bge-small-en-v1.5",
    batch_size: int = 64,
) -> int:
    """Embed every chunk with a sentence-transformers model on the GPU."""
    import json

    import torch
    from sentence_transformers import SentenceTransformer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(model_name, device=device)
    with open(chunks.path, encoding="utf-8") as src:
        rows = [json.loads(line) for line in src]
    vectors = model.encode(
        [row["text"] for row in rows],
        batch_size=batch_size,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    with open(embeddings.path, "w", encoding="utf-8") as out:
        for row, vector in zip(rows, vectors):
            row["vector"] = vector.tolist()
            out.write(json.dumps(row) + "\n")
    embeddings.metadata["dimension"] = int(vectors.shape[1]) if len(rows) else 0
    embeddings.metadata["model"] = model_name
    return len(rows)


@dsl.component(base_image=PYTHON_IMAGE, packages_to_install=["qdrant-client==1.10.1"])
def upsert_vectors(
    embeddings: Input[Dataset],
    collection: str,
    qdrant_url: str,
    batch_size: int = 256,
) -> int:
    """Create the collection if needed and upsert every embedded chunk."""
    import json
    import os
    import uuid

    from qdrant_client import QdrantClient
    from qdrant_client.models import Distance, PointStruct, VectorParams

    client = QdrantClient(url=qdrant_url, api_key=os.environ.get("QDRANT_API_KEY"))
    with open(embeddings.path, encoding="utf-8") as src:
        rows = [json.loads(line) for line in src]
    if not rows:
        return 0
    dimension = len(rows[0]["vector"])
    if not client.collection_exists(collection):
        client.create_collection(collection, vectors_config=VectorParams(size=dimension, distance=Distance.COSINE))
    for start in range(0, len(rows), batch_size):
        points = [
            PointStruct(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, row["id"])),
                vector=row["vector"],
                payload={"doc_id": row["doc_id"], "source": row["source"], "text": row["text"]},
            )
            for row in rows[start : start + batch_size]
        ]
        client.upsert(collection_name=collection, points=points, wait=True)
    return len(rows)


@dsl.component(base_image=PYTHON_IMAGE, packages_to_install=["mlflow-skinny==2.14.3"])
def log_to_mlflow(
    tracking_uri: str,
    experiment: str,
    collection: str,
    chunk_tokens: int,
    overlap_tokens: int,
    embedding_model: str,
    documents: int,
    chunks: int,
    upserted: int,
    metrics: Output[Metrics],
):
    """Record the ingestion parameters and counts in MLflow and as KFP metrics."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"ingest-{collection}"):
        mlflow.log_params(
            {
                "collection": collection,
                "chunk_tokens": chunk_tokens,
                "overlap_tokens": overlap_tokens,
                "embedding_model": embedding_model,
            }
        )
        values = {
            "documents": documents,
            "chunks": chunks,
            "upserted": upserted,
            "chunks_per_document": chunks / documents if documents else 0.0,
        }
        mlflow.log_metrics(values)
    for key, value in values.items():
        metrics.log_metric(key, value)


@dsl.component(base_image=PYTHON_IMAGE, packages_to_install=["mlflow-skinny==2.14.3"])
def report_status(tracking_uri: str, experiment: str, status: PipelineTaskFinalStatus):
    """Exit handler: record how the pipeline run ended, even when a step failed."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"status-{status.pipeline_job_resource_name}"):
        mlflow.set_tags(
            {
                "kfp.job": status.pipeline_job_resource_name,
                "kfp.state": status.state,
                "kfp.error": status.error_message or "",
            }
        )


@dsl.pipeline(
    name="document-ingestion",
    description="Fetch, chunk, embed and upsert documents into the vector store; log to MLflow.",
)
def document_ingestion(
    source_urls: list = ["https://kubeflow.org/docs/components/pipelines/overview/"],
    collection: str = "kubeflow-docs",
    qdrant_url: str = "http://qdrant.vector-store.svc.cluster.local:6333",
    mlflow_tracking_uri: str = "http://mlflow.mlflow.svc.cluster.local:5000",
    mlflow_experiment: str = "rag-ingestion",
    chunk_tokens: int = 512,
    overlap_tokens: int = 64,
    embedding_model: str = "BAAI/bge-small-en-v1.5",
):
    status = report_status(tracking_uri=mlflow_tracking_uri, experiment=mlflow_experiment)
    status.set_caching_options(enable_caching=False)

    with dsl.ExitHandler(status, name="ingest"):
        fetch = fetch_documents(source_urls=source_urls)
        fetch.set_retry(num_retries=3, backoff_duration="30s", backoff_factor=2.0)
        # Sources change between runs: never reuse a cached download.
        fetch.set_caching_options(enable_caching=False)

        chunk = chunk_documents(
            documents=fetch.outputs["documents"],
            chunk_tokens=chunk_tokens,
            overlap_tokens=overlap_tokens,
        )
        chunk.set_cpu_limit("2").set_memory_limit("4G")

        embed = embed_chunks(chunks=chunk.outputs["chunks"], model_name=embedding_model)
        embed.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
        embed.set_memory_limit("16G")

        upsert = upsert_vectors(
            embeddings=embed.outputs["embeddings"],
            collection=collection,
            qdrant_url=qdrant_url,
        )
        upsert.set_retry(num_retries=2)
        upsert.set_caching_options(enable_caching=False)
        kubernetes.use_secret_as_env(
            upsert,
            secret_name="qdrant-credentials",
            secret_key_to_env={"api-key": "QDRANT_API_KEY"},
        )

        log = log_to_mlflow(
            tracking_uri=mlflow_tracking_uri,
            experiment=mlflow_experiment,
            collection=collection,
            chunk_tokens=chunk_tokens,
            overlap_tokens=overlap_tokens,
            embedding_model=embedding_model,
            documents=fetch.outputs["Output"],
            chunks=chunk.outputs["Output"],
            upserted=upsert.output,
        )
        log.set_caching_options(enable_caching=False)
