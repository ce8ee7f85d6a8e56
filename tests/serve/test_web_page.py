"""The web page at / in headless Chromium with a fake microphone fed from a wav: a reply
arrives and its audio plays; a screenshot is saved (tmp dir, path printed)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_helpers import ServerThread, ToneVocoder, make_bot, script, tone  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                 "(tools/setup_env.sh installs it with apt-get)")]


class Cdp:
    """Minimal Chrome DevTools Protocol client over one page target."""

    def __init__(self, ws) -> None:
        self.ws, self.n = ws, 0

    async def call(self, method: str, **params):
        self.n += 1
        await self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]


def _devtools_port(profile, proc, timeout=30.0) -> int:
    path = os.path.join(profile, "DevToolsActivePort")
    t0 = time.time()
    while not os.path.exists(path) or not open(path).read().strip():
        if proc.poll() is not None or time.time() - t0 > timeout:
            raise RuntimeError(f"chromium did not start (exit {proc.poll()})")
        time.sleep(0.1)
    return int(open(path).read().split()[0])


def test_page_talks_and_plays_audio(tiny_tokenizer, tmp_path):
    import soundfile as sf
    import websockets

    from osum_echat.serve.app import build_app
    from osum_echat.serve.session import ServeConfig

    bot = make_bot(tiny_tokenizer)
    app = build_app(bot, ToneVocoder(chunk=4), cfg=ServeConfig(vad="energy"), processors=(script(bot, 4, 30),))
    mic = tmp_path / "mic.wav"  # 1 s of "speech" then 5 s of silence (Chromium loops the file)
    sf.write(str(mic), np.concatenate([tone(1.0), np.zeros(80000, np.float32)]), 16000, subtype="PCM_16")
    profile = tmp_path / "profile"
    with ServerThread(app) as srv:
        proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port = _devtools_port(str(profile), proc)
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
            page = next(t for t in targets if t["type"] == "page")

            async def drive():
                async with websockets.connect(page["webSocketDebuggerUrl"], max_size=2 ** 26) as ws:
                    cdp = Cdp(ws)
                    await cdp.call("Page.enable")
                    await cdp.call("Page.navigate", url=f"{srv.url}/?autostart=1&task=s2s")
                    state, t0 = {}, time.time()
                    while time.time() - t0 < 120:
                        r = await cdp.call("Runtime.evaluate", expression="JSON.stringify(window.osumState || {})",
                                           returnByValue=True)
                        state = json.loads(r["result"]["value"])
                        if state.get("responses", 0) >= 1 and state.get("audioPlayedMs", 0) > 0:
                            break
                        await asyncio.sleep(0.5)
                    shot = await cdp.call("Page.captureScreenshot", format="png")
                    return state, base64.b64decode(shot["data"])

            state, png = asyncio.run(drive())
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    out = tmp_path / "realtime_page.png"
    out.write_bytes(png)
    print(f"screenshot: {out}")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert state.get("connected") is not None and not state.get("errors"), state
    assert state["responses"] >= 1 and state["lastReply"], state
    assert state["audioChunks"] >= 1 and state["audioPlayedMs"] > 0, state
