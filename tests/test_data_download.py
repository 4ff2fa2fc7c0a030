"""Downloads against an HTTP server on 127.0.0.1 serving fixture files; no outside host is
ever contacted (name lookups of any other host fail the test)."""

import hashlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from convolve import data
from convolve.data import datasets
from convolve.data.download import DownloadError, RemoteFile, fetch, mirrors
from tests.data_fixtures import cifar_archive_bytes, cifar_arrays, write_idx_set


@pytest.fixture(autouse=True)
def hermetic(monkeypatch, tmp_path):
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"a test tried to reach {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    monkeypatch.delenv("CONVOLVE_DATA_MIRROR", raising=False)
    monkeypatch.setenv("CONVOLVE_DATA", str(tmp_path / "home"))


class Server:
    """Serves ``files[path] = body``; ``short`` paths announce their full length but send
    half and close. ``requests`` lists every path asked for."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.short: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "File not found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.short:
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                else:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


BODY = bytes(range(256)) * 40


def test_fetch_verifies_and_caches(server, tmp_path, capsys):
    server.files["/m/a.bin"] = BODY
    folder = tmp_path / "cache"
    path = fetch(RemoteFile("a.bin", sha(BODY)), folder, [server.base + "/m/"])
    assert path == folder / "a.bin" and path.read_bytes() == BODY
    assert [p.name for p in folder.iterdir()] == ["a.bin"]
    assert server.requests == ["/m/a.bin"]
    assert f"convolve: downloading {server.base}/m/a.bin to {path}" in capsys.readouterr().err
    assert fetch(RemoteFile("a.bin", sha(BODY)), folder, [server.base + "/m/"]) == path
    assert server.requests == ["/m/a.bin"]  # the second call makes no request


def test_wrong_checksum_is_refused_and_removed(server, tmp_path):
    server.files["/a.bin"] = BODY
    folder = tmp_path / "cache"
    wanted = "0" * 64
    with pytest.raises(DownloadError, match=(
        rf"^could not download a\.bin into {re.escape(str(folder))}: "
        rf"{server.base}/a\.bin: SHA-256 mismatch: expected {wanted}, received {sha(BODY)} "
        r"\(10240 bytes\); the file was discarded$"
    )):
        fetch(RemoteFile("a.bin", wanted), folder, [server.base])
    assert list(folder.iterdir()) == []


def test_truncated_transfer_is_refused_and_removed(server, tmp_path):
    server.files["/a.bin"] = BODY
    server.short.add("/a.bin")
    folder = tmp_path / "cache"
    with pytest.raises(DownloadError, match=rf"^could not download a\.bin into .*: "
                                            rf"{server.base}/a\.bin: truncated: received 5120 of "
                                            r"10240 bytes$"):
        fetch(RemoteFile("a.bin", sha(BODY)), folder, [server.base])
    assert list(folder.iterdir()) == []


def test_truncated_file_is_refused_and_removed(server, tmp_path):
    server.files["/a.bin"] = BODY[:1000]  # consistent length, wrong content
    folder = tmp_path / "cache"
    with pytest.raises(DownloadError, match=r"SHA-256 mismatch: .* \(1000 bytes\)"):
        fetch(RemoteFile("a.bin", sha(BODY)), folder, [server.base])
    assert list(folder.iterdir()) == []


def test_next_mirror_after_a_failure(server, tmp_path):
    server.files["/second/a.bin"] = BODY
    path = fetch(RemoteFile("a.bin", sha(BODY)), tmp_path,
                 [server.base + "/first", server.base + "/second"])
    assert path.read_bytes() == BODY
    assert server.requests == ["/first/a.bin", "/second/a.bin"]
    with pytest.raises(DownloadError, match=(
        rf"^could not download b\.bin into .*: {server.base}/first/b\.bin: HTTP Error 404: "
        rf"File not found; {server.base}/second/b\.bin: HTTP Error 404: File not found$"
    )):
        fetch(RemoteFile("b.bin", sha(BODY)), tmp_path,
              [server.base + "/first", server.base + "/second"])


def test_mirror_override(monkeypatch):
    assert mirrors(("https://a/", "https://b/")) == ("https://a/", "https://b/")
    assert mirrors(("https://a/",), "http://127.0.0.1:1/x") == ("http://127.0.0.1:1/x",)
    monkeypatch.setenv("CONVOLVE_DATA_MIRROR", "http://127.0.0.1:2/")
    assert mirrors(("https://a/",)) == ("http://127.0.0.1:2/",)
    assert mirrors(("https://a/",), "http://127.0.0.1:1/x") == ("http://127.0.0.1:1/x",)


def _serve_idx_set(server, tmp_path, monkeypatch):
    """Fixture IDX .gz files on the server, and MNIST_FILES pointing at their SHA-256."""
    arrays = write_idx_set(tmp_path / "src", gz=True)
    files = []
    for path in sorted((tmp_path / "src").iterdir()):
        server.files[f"/mnist/{path.name}"] = path.read_bytes()
        files.append(RemoteFile(path.name, sha(path.read_bytes())))
    monkeypatch.setattr(datasets, "MNIST_FILES", tuple(files))
    return arrays


def test_mnist_download(server, tmp_path, monkeypatch):
    arrays = _serve_idx_set(server, tmp_path, monkeypatch)
    monkeypatch.setenv("CONVOLVE_DATA_MIRROR", server.base + "/mnist/")
    ds = data.mnist(download=True)  # into $CONVOLVE_DATA/mnist
    assert (ds.train.labels == arrays["train"][1]).all()
    assert sorted(p.name for p in (tmp_path / "home" / "mnist").iterdir()) == sorted(
        f.name for f in datasets.MNIST_FILES)
    assert len(server.requests) == 4
    data.mnist(download=True)
    assert len(server.requests) == 4  # cached: no request


def test_mnist_download_fetches_only_missing_files(server, tmp_path, monkeypatch):
    _serve_idx_set(server, tmp_path, monkeypatch)
    folder = tmp_path / "mine"
    write_idx_set(folder, gz=False)  # raw files, whose SHA-256 differs from the .gz ones
    (folder / "t10k-labels-idx1-ubyte").unlink()
    data.mnist(folder, download=True, mirror=server.base + "/mnist")
    assert server.requests == ["/mnist/t10k-labels-idx1-ubyte.gz"]


def test_mnist_download_with_the_real_checksums_refuses_fixtures(server, tmp_path):
    write_idx_set(tmp_path / "src", gz=True)
    for path in (tmp_path / "src").iterdir():
        server.files[f"/{path.name}"] = path.read_bytes()
    folder = tmp_path / "cache"
    with pytest.raises(DownloadError, match=r"^could not download train-images-idx3-ubyte\.gz "
                                            r".*SHA-256 mismatch: expected 440fcabf"):
        data.mnist(folder, download=True, mirror=server.base)
    assert list(folder.iterdir()) == []


def test_fashion_mnist_download_uses_its_own_folder(server, tmp_path, monkeypatch):
    write_idx_set(tmp_path / "src", gz=True)
    files = []
    for path in sorted((tmp_path / "src").iterdir()):
        server.files[f"/{path.name}"] = path.read_bytes()
        files.append(RemoteFile(path.name, sha(path.read_bytes())))
    monkeypatch.setattr(datasets, "FASHION_MNIST_FILES", tuple(files))
    data.load("fashion-mnist", download=True, mirror=server.base)
    assert (tmp_path / "home" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").is_file()


def test_cifar10_download(server, tmp_path, monkeypatch):
    arrays = cifar_arrays()
    archive = cifar_archive_bytes(arrays)
    server.files["/c/cifar-10-python.tar.gz"] = archive
    monkeypatch.setattr(datasets, "CIFAR10_FILE",
                        RemoteFile("cifar-10-python.tar.gz", sha(archive)))
    ds = data.cifar10(tmp_path / "c10", download=True, mirror=server.base + "/c")
    assert ds.test.labels.tolist() == arrays["test_batch"][1]
    assert (tmp_path / "c10" / "cifar-10-python.tar.gz").read_bytes() == archive
    data.cifar10(tmp_path / "c10", download=True, mirror=server.base + "/c")
    assert server.requests == ["/c/cifar-10-python.tar.gz"]


def test_unreachable_mirror(tmp_path):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=rf"^could not download a\.bin into .*: "
                                            rf"http://127\.0\.0\.1:{port}/a\.bin: .*refused"):
        fetch(RemoteFile("a.bin", "0" * 64), tmp_path, [f"http://127.0.0.1:{port}"])
    assert list(tmp_path.iterdir()) == []


def test_published_checksums_are_well_formed():
    tables = (datasets.MNIST_FILES, datasets.FASHION_MNIST_FILES, (datasets.CIFAR10_FILE,))
    for table in tables:
        for file in table:
            assert re.fullmatch(r"[0-9a-f]{64}", file.sha256), file
    assert {f.name for f in datasets.MNIST_FILES} == {
        f"{base}.gz" for names in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                                   ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
        for base in names}
    assert not {f.sha256 for f in datasets.MNIST_FILES} & {
        f.sha256 for f in datasets.FASHION_MNIST_FILES}

