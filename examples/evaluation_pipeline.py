"""Model evaluation: score a trained classifier on a held-out test set, publish
Metrics and ClassificationMetrics (confusion matrix, ROC curve), then gate the
model on its accuracy: promote it, send it to human review, or reject it.
"""

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

SKLEARN_IMAGE = "python:3.11.9-slim-bookworm"
EVAL_PACKAGES = ["pandas==2.2.2", "scikit-learn==1.5.1", "joblib==1.4.2", "pyarrow==17.0.0"]


@dsl.component(base_image=SKLEARN_IMAGE, packages_to_install=EVAL_PACKAGES)
def prepare_test_set(
    source_uri: str,
    label_column: str,
    test_set: Output[Dataset],
    sample_fraction: float = 1.0,
    seed: int = 42,
):
    """Load the held-out split, drop incomplete rows and write it as Parquet."""
    import pandas as pd

    frame = pd.read_parquet(source_uri)
    frame = frame.dropna(subset=[label_column])
    if sample_fraction < 1.0:
        frame = frame.sample(frac=sample_fraction, random_state=seed)
    frame.to_parquet(test_set.path, index=False)
    test_set.metadata["rows"] = len(frame)
    test_set.metadata["label_column"] = label_column
    test_set.metadata["classes"] = sorted(str(c) for c in frame[label_column].unique())


@dsl.component(base_image=SKLEARN_IMAGE, packages_to_install=EVAL_PACKAGES)
def evaluate_model(
    model: Input[Model],
    test_set: Input[Dataset],
    label_column: str,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
) -> float:
    """Score the model and log accuracy, F1, confusion matrix and ROC curve."""
    import os

    import joblib
    import pandas as pd
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
        roc_curve,
    )

    model_file = model.path
    if os.path.isdir(model_file):
        model_file = os.path.join(model_file, "model.joblib")
    estimator = joblib.load(model_file)

    frame = pd.read_parquet(test_set.path)
    features = frame.drop(columns=[label_column])
    labels = frame[label_column].astype(str)
    predicted = pd.Series(estimator.predict(features)).astype(str)

    accuracy = float(accuracy_score(labels, predicted))
    metrics.log_metric("accuracy", accuracy)
    metrics.log_metric("f1_macro", float(f1_score(labels, predicted, average="macro")))
    metrics.log_metric("precision_macro", float(precision_score(labels, predicted, average="macro", zero_division=0)))
    metrics.log_metric("recall_macro", float(recall_score(labels, predicted, average="macro", zero_division=0)))
    metrics.log_metric("test_rows", float(len(frame)))

    classes = sorted(labels.unique())
    matrix = confusion_matrix(labels, predicted, labels=classes)
    classification_metrics.log_confusion_matrix(classes, matrix.tolist())

    if len(classes) == 2 and hasattr(estimator, "predict_proba"):
        positive = list(estimator.classes_).index(classes[1]) if hasattr(estimator, "classes_") else 1
        scores = estimator.predict_proba(features)[:, positive]
        truth = (labels == classes[1]).astype(int)
        fpr, tpr, thresholds = roc_curve(truth, scores)
        # The first threshold is +inf, which is not valid JSON.
        classification_metrics.log_roc_curve(fpr[1:].tolist(), tpr[1:].tolist(), thresholds[1:].tolist())
        metrics.log_metric("roc_auc", float(roc_auc_score(truth, scores)))
    return accuracy


@dsl.component(base_image=SKLEARN_IMAGE, packages_to_install=["google-cloud-storage==2.18.0"])
def promote_model(model: Input[Model], registry_uri: str, accuracy: float) -> str:
    """Copy the model to the production prefix of the registry bucket."""
    import os

    from google.cloud import storage

    bucket_name, _, prefix = registry_uri.removeprefix("gs://").partition("/")
    bucket = storage.Client().bucket(bucket_name)
    target = f"{prefix.rstrip('/')}/production/model.joblib"
    source = model.path if not os.path.isdir(model.path) else os.path.join(model.path, "model.joblib")
    blob = bucket.blob(target)
    blob.metadata = {"accuracy": f"{accuracy:.4f}", "source": model.uri}
    blob.upload_from_filename(source)
    return f"gs://{bucket_name}/{target}"


@dsl.component(base_image=SKLEARN_IMAGE, packages_to_install=["requests==2.32.3"])
def request_review(model_uri: str, accuracy: float, webhook_url: str):
    """Open a review request for a model that is close to the bar."""
    import requests

    text = f"Model {model_uri} reached accuracy {accuracy:.4f}: needs a human review before promotion."
    requests.post(webhook_url, json={"text": text}, timeout=30).raise_for_status()


@dsl.component(base_image=SKLEARN_IMAGE)
def reject_model(model_uri: str, accuracy: float, minimum: float):
    """Fail loudly so the run shows the rejection."""
    raise RuntimeError(f"Model {model_uri} rejected: accuracy {accuracy:.4f} is below {minimum:.4f}")


@dsl.pipeline(
    name="model-evaluation",
    description="Evaluate a classifier, publish metrics, and gate promotion on accuracy.",
)
def evaluation_pipeline(
    model_uri: str = "gs://ml-models/churn/2024-07-01/model",
    test_data_uri: str = "gs://ml-datasets/churn/test.parquet",
    label_column: str = "churned",
    registry_uri: str = "gs://ml-models/churn",
    review_webhook: str = "https://hooks.example.com/ml-review",
    promote_threshold: float = 0.92,
    review_threshold: float = 0.85,
):
    model = dsl.importer(
        artifact_uri=model_uri,
        artifact_class=Model,
        reimport=False,
        metadata={"framework": "scikit-learn"},
    )
    test_set = prepare_test_set(source_uri=test_data_uri, label_column=label_column)
    test_set.set_retry(num_retries=2, backoff_duration="10s")

    evaluation = evaluate_model(
        model=model.output,
        test_set=test_set.outputs["test_set"],
        label_column=label_column,
    )
    evaluation.set_cpu_limit("4").set_memory_limit("8G")
    # Metrics must reflect the current model bytes, not a cached run.
    evaluation.set_caching_options(enable_caching=False)
    accuracy = evaluation.outputs["Output"]

    with dsl.If(accuracy >= promote_threshold, name="good-enough"):
        promote_model(model=model.output, registry_uri=registry_uri, accuracy=accuracy)
    with dsl.Elif(accuracy >= review_threshold, name="close-call"):
        request_review(model_uri=model_uri, accuracy=accuracy, webhook_url=review_webhook)
    with dsl.Else(name="too-weak"):
        reject_model(model_uri=model_uri, accuracy=accuracy, minimum=review_threshold)
