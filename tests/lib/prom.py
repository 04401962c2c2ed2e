#!/usr/bin/env python3
"""The Prometheus side of tests/integration/metrics.sh.

  prom.py get URL OUT        the body to OUT; prints the HTTP status
  prom.py check FILE         the text exposition format, strictly:
                             every sample line parses, every family has
                             # HELP and # TYPE before its samples, each
                             histogram's buckets are cumulative and end at
                             +Inf equal to its _count
  prom.py value FILE SAMPLE  the value of SAMPLE (name{labels} as written,
                             or a bare name), summed over a histogram's
                             _count when SAMPLE names a family's _count
                             without labels
"""
import re
import sys
import urllib.error
import urllib.request

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
                    r'(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})?'
                    r' (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def get(url, out):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        body, status = e.read(), e.code
    with open(out, 'wb') as f:
        f.write(body)
    print(status)


def parse(path):
    """[(name, labels dict, value)], {family: type}, errors."""
    samples, types, helps, errors = [], {}, set(), []
    for n, line in enumerate(open(path, encoding='utf-8'), 1):
        line = line.rstrip('\n')
        if line.startswith('# HELP '):
            helps.add(line.split(' ')[2])
            continue
        if line.startswith('# TYPE '):
            parts = line.split(' ')
            if len(parts) != 4 or parts[3] not in (
                    'counter', 'gauge', 'histogram', 'summary', 'untyped'):
                errors.append(f'{n}: bad TYPE line: {line}')
            elif parts[2] not in helps:
                errors.append(f'{n}: TYPE before HELP: {line}')
            else:
                types[parts[2]] = parts[3]
            continue
        if line == '' or line.startswith('#'):
            continue
        m = SAMPLE.match(line)
        if m is None:
            errors.append(f'{n}: does not parse: {line}')
            continue
        try:
            value = float(m.group(4))
        except ValueError:
            errors.append(f'{n}: bad value: {line}')
            continue
        name = m.group(1)
        family = re.sub(r'_(bucket|sum|count)$', '', name)
        if name not in types and not (family in types and
                                      types[family] == 'histogram'):
            errors.append(f'{n}: sample before its HELP and TYPE: {line}')
        if not name.startswith('magick_dpc_'):
            errors.append(f'{n}: no magick_dpc_ prefix: {line}')
        samples.append((name, dict(LABEL.findall(m.group(3) or '')), value))
    return samples, types, errors


def check_histograms(samples, types):
    errors = []
    for family, t in types.items():
        if t != 'histogram':
            continue
        series = {}
        for name, labels, value in samples:
            if not name.startswith(family + '_'):
                continue
            key = tuple(sorted((k, v) for k, v in labels.items() if k != 'le'))
            s = series.setdefault(key, {'buckets': [], 'count': None})
            if name == family + '_bucket':
                s['buckets'].append((labels['le'], value))
            elif name == family + '_count':
                s['count'] = value
        if not series:
            errors.append(f'{family}: no series')
        for key, s in series.items():
            b = s['buckets']
            if not b or b[-1][0] != '+Inf':
                errors.append(f'{family}{key}: buckets do not end at +Inf')
                continue
            les = [float(le) for le, _ in b[:-1]]
            if les != sorted(les):
                errors.append(f'{family}{key}: le not increasing')
            counts = [v for _, v in b]
            if counts != sorted(counts):
                errors.append(f'{family}{key}: buckets not cumulative')
            if s['count'] != counts[-1]:
                errors.append(f'{family}{key}: +Inf {counts[-1]} != '
                              f'_count {s["count"]}')
    return errors


def check(path):
    samples, types, errors = parse(path)
    errors += check_histograms(samples, types)
    if not samples:
        errors.append('no samples')
    for e in errors:
        print(e)
    return 1 if errors else 0


def value(path, want):
    samples, _, _ = parse(path)
    total, found = 0.0, False
    for name, labels, v in samples:
        text = name
        if labels:
            text += '{' + ','.join(f'{k}="{x}"' for k, x in labels.items()) + '}'
        if text == want or (name == want and want.endswith('_count')):
            total += v
            found = True
    if not found:
        return 1
    print(f'{total:.17g}')
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == 'get':
        get(sys.argv[2], sys.argv[3])
        return 0
    if cmd == 'check':
        return check(sys.argv[2])
    if cmd == 'value':
        return value(sys.argv[2], sys.argv[3])
    return 2


if __name__ == '__main__':
    sys.exit(main())
