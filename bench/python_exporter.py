"""A prometheus_client (Python) exporter holding the same series as the file it is given:
the usual way such exporters are written. Usage: python_exporter.py FILE.prom PORT"""
import sys
import time

from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client.parser import text_string_to_metric_families


def main() -> None:
    path, port = sys.argv[1], int(sys.argv[2])
    registry = CollectorRegistry()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for family in text_string_to_metric_families(text):
        if not family.samples:
            continue
        names = list(family.samples[0].labels.keys())
        gauge = Gauge(family.name, family.documentation or family.name, names, registry=registry)
        for s in family.samples:
            gauge.labels(**s.labels).set(s.value)
    start_http_server(port, addr="127.0.0.1", registry=registry)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
