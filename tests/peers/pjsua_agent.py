#!/usr/bin/env python3
"""A headless PJSUA2 agent softphone for voxdesk's tests.

It registers to voxdesk with digest credentials, answers the first call by itself and
sends silence (null sound device). With --consult it then does what an agent does for an
attended transfer: after --after seconds it calls the colleague through voxdesk
(sip:<consult>@server), and --talk seconds after the colleague answers, it transfers the
first call onto that consultation (REFER with Replaces, RFC 3891). One line per event goes
to stdout (flushed), SIP messages to --log.
"""

import argparse
import ctypes
import glob
import os
import sys
import time

import pjsua2 as pj


def say(*parts):
    print(*parts, flush=True)


class Call(pj.Call):
    def __init__(self, acc, name, call_id=pj.PJSUA_INVALID_ID):
        super().__init__(acc, call_id)
        self.name = name
        self.confirmed_at = None
        self.disconnected = False

    def onCallState(self, prm):
        ci = self.getInfo()
        say("call", self.name, "state", ci.stateText, ci.lastStatusCode)
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
            self.confirmed_at = time.monotonic()
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True

    def onCallMediaState(self, prm):
        # Send the null device's silence so the leg has RTP.
        for i, m in enumerate(self.getInfo().media):
            if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                pj.Endpoint.instance().audDevManager().getCaptureDevMedia().startTransmit(
                    self.getAudioMedia(i)
                )

    def onCallTransferStatus(self, prm):
        say("call", self.name, "transfer-status", prm.statusCode, "final", prm.finalNotify)


class Account(pj.Account):
    def __init__(self):
        super().__init__()
        self.incoming = None

    def onRegState(self, prm):
        say("registration", prm.code)

    def onIncomingCall(self, prm):
        call = Call(self, "incoming", prm.callId)
        self.incoming = call
        op = pj.CallOpParam()
        op.statusCode = 200
        call.answer(op)
        say("call incoming answered")


def load_digests():
    """The PyPI wheel computes SIP digests with its bundled OpenSSL 1.0.2, whose digest
    table stays empty until something registers the algorithms (pjsip only does that when
    it opens a TLS socket): without this, every digest challenge fails as "algorithm (MD5)
    not supported"."""
    libs = os.path.join(os.path.dirname(pj.__file__), "..", "pjsua2_python.libs")
    for lib in glob.glob(os.path.join(libs, "libcrypto-*.so*")):
        ctypes.CDLL(lib).OpenSSL_add_all_digests()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="voxdesk host:port")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--consult", help="colleague to consult, then transfer the caller to")
    ap.add_argument("--after", type=float, default=3.0)
    ap.add_argument("--talk", type=float, default=3.0)
    ap.add_argument("--secs", type=float, default=60.0)
    ap.add_argument("--log", default="/dev/null")
    a = ap.parse_args()

    load_digests()
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = 5
    cfg.logConfig.consoleLevel = 0
    cfg.logConfig.msgLogging = 1
    cfg.logConfig.filename = a.log
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    tc = pj.TransportConfig()
    tc.port = 0
    tc.boundAddress = "127.0.0.1"
    tc.publicAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
    ep.libStart()

    ac = pj.AccountConfig()
    ac.idUri = f"sip:{a.user}@{a.server}"
    ac.regConfig.registrarUri = f"sip:{a.server}"
    ac.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", a.user, 0, a.password))
    ac.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    ac.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
    acc = Account()
    acc.create(ac)

    consult = None
    transferred = False
    end = time.monotonic() + a.secs
    while time.monotonic() < end:
        ep.libHandleEvents(20)
        now = time.monotonic()
        first = acc.incoming
        if a.consult and first is not None and first.confirmed_at and consult is None:
            if now - first.confirmed_at >= a.after:
                consult = Call(acc, "consult")
                consult.makeCall(f"sip:{a.consult}@{a.server}", pj.CallOpParam(True))
                say("consult dialled", a.consult)
        if consult is not None and consult.confirmed_at and not transferred:
            if now - consult.confirmed_at >= a.talk and not first.disconnected:
                first.xferReplaces(consult, pj.CallOpParam(True))
                transferred = True
                say("transfer sent")
        if first is not None and first.disconnected and (consult is None or consult.disconnected):
            if a.consult is None or transferred:
                say("all calls ended")
                break
    ep.hangupAllCalls()
    for _ in range(20):
        ep.libHandleEvents(20)
    # pjsua's destructor can block on a busy machine; the test only needs the log.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
