"""A stand-in for the Hugging Face Hub on loopback: the endpoints huggingface_hub 2.4 and
datasets 5.2 call for `snapshot_download` / `list_repo_tree` / `from_pretrained` /
`load_dataset`, served from repositories held in memory. Point the real clients at it with
`HF_ENDPOINT=http://127.0.0.1:PORT`.

Served, for models and datasets (`datasets/` before the repository in the path): revision
resolution (`/api/{models,datasets}/<repo>/revision/<rev>`: branches, `refs/pr/N`,
`refs/convert/parquet` and commit shas), the tree listing (`/api/.../tree/<rev>[/<folder>]`,
recursive or one level with its folders), `paths-info`, and file downloads (`HEAD`/`GET
[/datasets]/<repo>/resolve/<rev>/<path>`) with the commit and etag headers the client reads.
Unknown repos, revisions and files answer 404 with the hub's `X-Error-Code`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFS_PATTERNS = (".safetensors", ".bin", ".model", ".h5")  # stored in LFS on the real hub


@dataclass
class Repo:
    """Commits (sha -> path -> bytes) and refs (branch or `refs/pr/N` -> sha)."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        sha = self.refs.get(revision, revision)
        return sha if sha in self.commits else None


class StandInHub:
    """`with StandInHub(repos) as hub:` serves `repos` at `hub.url` until the block ends.
    `hub.stall()` makes every request hang (a hub that accepts connections and never answers);
    `hub.requests` lists (method, path) of everything asked."""

    def __init__(self, repos: dict[str, Repo], datasets: dict[str, Repo] | None = None):
        self.repos = repos
        self.datasets = datasets or {}
        self.requests: list[tuple[str, str]] = []
        self.stalled = threading.Event()
        self.released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StandInHub:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()

    def stall(self) -> None:
        self.stalled.set()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def do_POST(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = urlsplit(self.path).path
                hub.requests.append((self.command, path))
                if hub.stalled.is_set():
                    hub.released.wait(600)
                    return
                parts = [unquote(p) for p in path.strip("/").split("/")]
                self.kind = hub.repos
                if parts[:2] == ["api", "datasets"] or parts[:1] == ["datasets"]:
                    self.kind = hub.datasets
                    parts = [parts[0], *parts[2:]] if parts[0] == "api" else parts[1:]
                elif parts[:2] == ["api", "models"]:
                    parts = [parts[0], *parts[2:]]
                if parts[:1] == ["api"] and len(parts) >= 5:
                    self._api(f"{parts[1]}/{parts[2]}", parts[3], parts[4], "/".join(parts[5:]))
                elif len(parts) >= 5 and parts[2] == "resolve":
                    self._file(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), body)
                else:
                    self._error(404, "RepoNotFound")

            def _commit(self, repo_id: str, revision: str) -> tuple[str, dict[str, bytes]] | None:
                """(sha, files) of `revision`, or None after answering 404 as the hub does."""
                repo = self.kind.get(repo_id)
                if repo is None:
                    self._error(404, "RepoNotFound")
                    return None
                sha = repo.resolve(revision)
                if sha is None:
                    self._error(404, "RevisionNotFound")
                    return None
                return sha, repo.commits[sha]

            def _api(self, repo_id: str, what: str, revision: str, folder: str) -> None:
                found = self._commit(repo_id, revision)
                if found is None:
                    return
                sha, files = found
                if what == "revision":
                    return self._json(
                        {
                            "id": repo_id,
                            "sha": sha,
                            "private": False,
                            "siblings": [{"rfilename": p} for p in sorted(files)],
                        }
                    )
                if what == "tree":
                    recursive = "recursive=true" in urlsplit(self.path).query.lower()
                    return self._json(_listing(files, folder, recursive))
                if what == "paths-info":
                    length = int(self.headers.get("Content-Length") or 0)
                    asked = parse_qs(self.rfile.read(length).decode()).get("paths", [])
                    return self._json(_paths_info(files, asked))
                self._error(404, "EntryNotFound")

            def _file(self, repo_id: str, revision: str, name: str, body: bool) -> None:
                found = self._commit(repo_id, revision)
                if found is None:
                    return
                sha, files = found
                data = files.get(name)
                if data is None:
                    return self._error(404, "EntryNotFound")
                entry = _tree_entry(name, data)
                etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
                self.send_response(200)
                self.send_header("X-Repo-Commit", sha)
                self.send_header("ETag", f'"{etag}"')
                if "lfs" in entry:
                    self.send_header("X-Linked-Etag", f'"{etag}"')
                    self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _json(self, value) -> None:
                data = json.dumps(value).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, code: str) -> None:
                data = json.dumps({"error": code}).encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

        return Handler


def _tree_entry(path: str, data: bytes) -> dict:
    """A file as the hub's tree listing shows it: git blob id, size, and LFS details for large files."""
    entry = {
        "type": "file",
        "path": path,
        "size": len(data),
        "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
    }
    if path.endswith(LFS_PATTERNS):
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return entry


def _listing(files: dict[str, bytes], folder: str, recursive: bool) -> list[dict]:
    """The tree under `folder`: every file (and folder) below it, or one level with its folders."""
    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    entries: dict[str, dict] = {}
    for path, data in sorted(files.items()):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :].split("/")
        for depth in range(1, len(rest)):
            sub = prefix + "/".join(rest[:depth])
            if recursive or depth == 1:
                entries.setdefault(
                    sub, {"type": "directory", "path": sub, "oid": hashlib.sha1(sub.encode()).hexdigest()}
                )
        if recursive or len(rest) == 1:
            entries[path] = _tree_entry(path, data)
    if prefix and not entries:
        return []
    return list(entries.values())


def _paths_info(files: dict[str, bytes], asked: list[str]) -> list[dict]:
    """What the hub says of each asked path: a file's entry, a folder, or nothing."""
    found = []
    for path in asked:
        path = path.strip("/")
        if path in files:
            found.append(_tree_entry(path, files[path]))
        elif any(name.startswith(f"{path}/") for name in files):
            found.append({"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest()})
    return found
