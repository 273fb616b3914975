"""Buckets on the real object stores the storage tests run on, each seen through the store's
own client (boto3, azure-storage-blob, google-cloud-storage), never through fsspec: what
sesa_fp wrote is checked by an independent reader. The fixtures live in conftest.py."""

from __future__ import annotations

from typing import Any

import pytest

# Azurite's well-known development account (published in its documentation; not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")



class ObjectStore:
    """One bucket (or container) on a real object store, seen through the store's own client,
    not through fsspec: the tests check what sesa_fp wrote with an independent reader.

    ``uri(path)`` is the fsspec URL sesa_fp is given; keys are relative to the bucket."""

    name = ""
    scheme = ""
    backend = ""  # the YAML ``storage.backend`` name

    def __init__(self, bucket: str, storage_options: dict[str, Any]) -> None:
        self.bucket = bucket
        self.storage_options = storage_options

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.bucket!r})"

    def uri(self, path: str = "") -> str:
        return f"{self.scheme}://{self.bucket}/{path}"

    def keys(self, prefix: str) -> dict[str, bytes]:
        """Every object under ``prefix/`` and its bytes, keyed by the path below it."""
        prefix = prefix.rstrip("/") + "/"
        return {k[len(prefix):]: self.get(k) for k in self.list(prefix)}

    # what each store implements with its own client
    def create_bucket(self, name: str) -> None:
        raise NotImplementedError

    def delete_bucket(self, name: str) -> None:
        raise NotImplementedError

    def buckets(self) -> set[str]:
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError


class S3Store(ObjectStore):
    name, scheme, backend = "s3", "s3", "s3"

    def __init__(self, bucket: str, url: str) -> None:
        boto3 = pytest.importorskip("boto3")
        super().__init__(bucket, {"key": "testing", "secret": "testing",
                                  "client_kwargs": {"endpoint_url": url}})
        self.client = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                                   aws_access_key_id="testing", aws_secret_access_key="testing")

    def create_bucket(self, name: str) -> None:
        self.client.create_bucket(Bucket=name)

    def delete_bucket(self, name: str) -> None:
        for key in self.list("", name):
            self.client.delete_object(Bucket=name, Key=key)
        self.client.delete_bucket(Bucket=name)

    def buckets(self) -> set[str]:
        return {b["Name"] for b in self.client.list_buckets()["Buckets"]}

    def list(self, prefix: str, bucket: str | None = None) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket or self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


class AzureStore(ObjectStore):
    name, scheme, backend = "azure", "az", "azure"

    def __init__(self, bucket: str, url: str) -> None:
        blob = pytest.importorskip("azure.storage.blob")
        pytest.importorskip("adlfs")
        conn = (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                f"AccountKey={AZURITE_KEY};BlobEndpoint={url};")
        super().__init__(bucket, {"connection_string": conn})
        self.service = blob.BlobServiceClient.from_connection_string(conn)

    def create_bucket(self, name: str) -> None:
        self.service.create_container(name)

    def delete_bucket(self, name: str) -> None:
        self.service.delete_container(name)

    def buckets(self) -> set[str]:
        return {c.name for c in self.service.list_containers()}

    def list(self, prefix: str) -> list[str]:
        container = self.service.get_container_client(self.bucket)
        return [b.name for b in container.list_blobs(name_starts_with=prefix)]

    def get(self, key: str) -> bytes:
        return bytes(self.service.get_blob_client(self.bucket, key).download_blob().readall())

    def put(self, key: str, data: bytes) -> None:
        self.service.get_blob_client(self.bucket, key).upload_blob(data, overwrite=True)

    def delete(self, key: str) -> None:
        self.service.get_blob_client(self.bucket, key).delete_blob()


class GcsStore(ObjectStore):
    name, scheme, backend = "gcs", "gs", "gcs"

    def __init__(self, bucket: str, url: str) -> None:
        storage = pytest.importorskip("google.cloud.storage")
        credentials = pytest.importorskip("google.auth.credentials")
        pytest.importorskip("gcsfs")
        super().__init__(bucket, {"endpoint_url": url, "token": "anon", "project": "test"})
        self.client = storage.Client(project="test",
                                     credentials=credentials.AnonymousCredentials(),
                                     client_options={"api_endpoint": url})

    def create_bucket(self, name: str) -> None:
        self.client.create_bucket(name)

    def delete_bucket(self, name: str) -> None:
        self.client.get_bucket(name).delete(force=True)

    def buckets(self) -> set[str]:
        return {b.name for b in self.client.list_buckets()}

    def list(self, prefix: str) -> list[str]:
        return [b.name for b in self.client.list_blobs(self.bucket, prefix=prefix)]

    def get(self, key: str) -> bytes:
        return bytes(self.client.bucket(self.bucket).blob(key).download_as_bytes())

    def put(self, key: str, data: bytes) -> None:
        self.client.bucket(self.bucket).blob(key).upload_from_string(data)

    def delete(self, key: str) -> None:
        self.client.bucket(self.bucket).blob(key).delete()
