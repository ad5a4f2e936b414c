#!/usr/bin/env python3
"""A stand-in for the model, so the demo runs the real Codex CLI offline.

A Responses-API server on 127.0.0.1 (standard library only). Every
`POST /v1/responses` is answered with one assistant message that says what
Codex sent: how many of the user's messages the thread holds, the last one,
and the working directory Codex reported. So the demo shows the whole
conversation arriving on the other machine, in the new worktree.

    python3 scripts/mock_model.py PORT_FILE   # writes the port, serves until killed

Codex's config for it (`$CODEX_HOME/config.toml`):

    model = "mock-model"
    model_provider = "mock"
    [model_providers.mock]
    base_url = "http://127.0.0.1:PORT/v1"
    wire_api = "responses"
"""

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def texts(item):
    for part in item.get("content") or []:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            yield part["text"]


def answer(request):
    """The assistant's text for one request body."""
    said, cwd = [], None
    for item in request.get("input") or []:
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        for text in texts(item):
            found = re.search(r"<cwd>(.*?)</cwd>", text)
            if found:
                cwd = found.group(1)
            elif not text.startswith("<"):
                said.append(text)
    last = said[-1] if said else ""
    return (
        f'[stand-in model] This thread holds {len(said)} of your messages; the last: "{last}". '
        f"Working directory: {cwd}"
    )


def sse(text, n):
    events = [
        {"type": "response.created", "response": {"id": f"resp_{n}"}},
        {
            "type": "response.output_item.done",
            "item": {
                "type": "message",
                "role": "assistant",
                "id": f"msg_{n}",
                "content": [{"type": "output_text", "text": text}],
            },
        },
        {
            "type": "response.completed",
            "response": {
                "id": f"resp_{n}",
                "usage": {
                    "input_tokens": 10,
                    "input_tokens_details": None,
                    "output_tokens": 5,
                    "output_tokens_details": None,
                    "total_tokens": 15,
                },
            },
        },
    ]
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    served = 0

    def reply(self, status, content_type, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.split("?")[0].endswith("/models"):
            self.reply(200, "application/json", json.dumps({"data": []}))
        else:
            self.reply(404, "application/json", json.dumps({"error": "not found"}))

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        if not self.path.split("?")[0].endswith("/responses"):
            self.reply(404, "application/json", json.dumps({"error": "not found"}))
            return
        try:
            request = json.loads(body)
        except ValueError:
            request = {}
        Handler.served += 1
        self.reply(200, "text/event-stream", sse(answer(request), Handler.served))

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(sys.argv[1], "w") as port_file:
        port_file.write(f"{server.server_address[1]}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
