"""A stand-in for the Hugging Face Hub on loopback: the endpoints huggingface_hub 2.4 calls for
`snapshot_download` / `list_repo_tree` / `from_pretrained`, served from repositories held in
memory. Point the real client at it with `HF_ENDPOINT=http://127.0.0.1:PORT`.

Served: revision resolution (`/api/models/<repo>/revision/<rev>`, branches, `refs/pr/N` and
commit shas), the recursive tree listing (`/api/models/<repo>/tree/<rev>`), and file downloads
(`HEAD`/`GET /<repo>/resolve/<rev>/<path>`) with the commit and etag headers the client reads.
Unknown repos, revisions and files answer 404 with the hub's `X-Error-Code`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

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

    def __init__(self, repos: dict[str, Repo]):
        self.repos = repos
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

            def _serve(self, body: bool) -> None:
                path = urlsplit(self.path).path
                hub.requests.append((self.command, path))
                if hub.stalled.is_set():
                    hub.released.wait(600)
                    return
                parts = [unquote(p) for p in path.strip("/").split("/")]
                if parts[:2] == ["api", "models"] and len(parts) >= 6:
                    self._api(f"{parts[2]}/{parts[3]}", parts[4], parts[5])
                elif len(parts) >= 5 and parts[2] == "resolve":
                    self._file(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), body)
                else:
                    self._error(404, "RepoNotFound")

            def _commit(self, repo_id: str, revision: str) -> tuple[str, dict[str, bytes]] | None:
                """(sha, files) of `revision`, or None after answering 404 as the hub does."""
                repo = hub.repos.get(repo_id)
                if repo is None:
                    self._error(404, "RepoNotFound")
                    return None
                sha = repo.resolve(revision)
                if sha is None:
                    self._error(404, "RevisionNotFound")
                    return None
                return sha, repo.commits[sha]

            def _api(self, repo_id: str, what: str, revision: str) -> None:
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
                    return self._json([_tree_entry(p, data) for p, data in sorted(files.items())])
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
