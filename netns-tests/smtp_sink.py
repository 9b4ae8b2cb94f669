#!/usr/bin/env python3
"""A tiny SMTP sink for the tests: accepts every message and writes it to
DIR/msg-PID-N.json as {"mail_from", "rcpt_to", "subject", "message_id", "body"}.

    python3 smtp_sink.py HOST PORT DIR [REFUSE]

REFUSE: comma-separated recipient addresses answered "550 5.1.1 no such user" (a
permanent refusal) at RCPT, so a test can see how the hub treats a bounce.

Enough of RFC 5321 for one client: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
No TLS, no AUTH. Standard library only.
"""
import asyncio
import email
import email.policy
import json
import os
import sys

count = 0


async def session(reader, writer, out_dir, refuse):
    global count

    async def reply(*lines):
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            writer.write(f"{line[:3]}{sep}{line[4:]}\r\n".encode())
        await writer.drain()

    await reply("220 smtp-sink ready")
    mail_from, rcpt_to = None, []
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = line.decode("utf-8", "replace").rstrip("\r\n")
        verb = cmd.split(" ", 1)[0].upper()
        arg = cmd[len(verb):].strip()
        if verb == "EHLO":
            await reply("250 smtp-sink", "250 8BITMIME", "250 SMTPUTF8")
        elif verb == "HELO":
            await reply("250 smtp-sink")
        elif verb == "MAIL":
            mail_from, rcpt_to = arg.split(":", 1)[1].split()[0].strip("<>"), []
            await reply("250 ok")
        elif verb == "RCPT":
            rcpt = arg.split(":", 1)[1].split()[0].strip("<>")
            if rcpt in refuse:
                print(f"refused {rcpt}", flush=True)
                await reply("550 5.1.1 no such user")
            else:
                rcpt_to.append(rcpt)
                await reply("250 ok")
        elif verb == "DATA":
            await reply("354 end with <CRLF>.<CRLF>")
            data = bytearray()
            while True:
                chunk = await reader.readline()
                if chunk in (b".\r\n", b".\n", b""):
                    break
                data += chunk[1:] if chunk.startswith(b".") else chunk
            msg = email.message_from_bytes(bytes(data), policy=email.policy.default)
            count += 1
            record = {
                "mail_from": mail_from,
                "rcpt_to": rcpt_to,
                "subject": str(msg["subject"]),
                "message_id": str(msg["message-id"]),
                "body": msg.get_content(),
            }
            path = os.path.join(out_dir, f"msg-{os.getpid()}-{count}.json")
            with open(path + ".tmp", "w") as f:
                json.dump(record, f)
            os.rename(path + ".tmp", path)  # readers never see half a message
            print(f"received {path} for {rcpt_to}", flush=True)
            await reply("250 queued")
        elif verb in ("RSET", "NOOP"):
            await reply("250 ok")
        elif verb == "QUIT":
            await reply("221 bye")
            break
        else:
            await reply("502 not implemented")
    writer.close()


async def main():
    host, port, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    refuse = set(filter(None, (sys.argv[4] if len(sys.argv) > 4 else "").split(",")))
    os.makedirs(out_dir, exist_ok=True)
    server = await asyncio.start_server(lambda r, w: session(r, w, out_dir, refuse), host, port)
    print(f"smtp sink on {host}:{port}, messages in {out_dir}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
