"""Prints the benchmark table (Markdown) from run.sh's results.tsv:
server, endpoint, value (req/s or KiB), p50 ms, p99 ms, failed requests."""
import csv
import sys

rows = {}
for server, endpoint, value, p50, p99, bad in csv.reader(open(sys.argv[1]), delimiter="\t"):
    rows[(server, endpoint)] = (value, p50, p99, bad)
servers = [s for s in ("palisade-memory", "palisade-pg", "node") if any(k[0] == s for k in rows)]
palisades = [s for s in servers if s != "node"]


def num(x):
    return float(x) if x else 0.0


print("| endpoint | " + " | ".join(f"{s} req/s (p50 / p99 ms)" for s in servers)
      + "".join(f" | {s} / node" for s in palisades if "node" in servers) + " |")
print("|---" * (1 + len(servers) + (len(palisades) if "node" in servers else 0)) + "|")
for endpoint in ("token", "introspect", "jwks"):
    cells = []
    for s in servers:
        v = rows.get((s, endpoint))
        cells.append(f"{num(v[0]):,.0f} ({num(v[1]):.2f} / {num(v[2]):.2f})"
                     + (f" **{v[3]} failed**" if v and v[3] not in ("0", "0+0") else "") if v else "-")
    if "node" in servers and (("node", endpoint) in rows):
        n = num(rows[("node", endpoint)][0])
        for s in palisades:
            p = rows.get((s, endpoint))
            cells.append(f"{num(p[0]) / n:.1f}x" if p and n else "-")
    print(f"| {endpoint} | " + " | ".join(cells) + " |")

print()
print("| at half of each server's own peak | " + " | ".join(f"{s} rate achieved (p50 / p99 ms)" for s in servers) + " |")
print("|---" * (1 + len(servers)) + "|")
for endpoint in ("token@half", "introspect@half"):
    cells = []
    for s in servers:
        v = rows.get((s, endpoint))
        cells.append(f"{num(v[0]):,.0f}/s ({num(v[1]):.2f} / {num(v[2]):.2f})"
                     + (f" **{v[3]} failed**" if v[3] != "0" else "") if v else "-")
    print(f"| {endpoint.split('@')[0]} | " + " | ".join(cells) + " |")

print()
print("| RSS (MiB) | " + " | ".join(servers) + " |")
print("|---" * (1 + len(servers)) + "|")
for key, label in (("rss_idle_kib", "idle, after start"), ("rss_after_kib", "idle, after the load")):
    print(f"| {label} | " + " | ".join(
        f"{num(rows[(s, key)][0]) / 1024:.1f}" if (s, key) in rows else "-" for s in servers) + " |")
