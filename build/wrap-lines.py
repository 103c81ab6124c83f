#!/usr/bin/env python3
"""Wraps C# lines longer than a limit (default 120) without changing what the code means.

It only ever breaks at a space that lies outside string and character literals, or splits a regular or interpolated
string literal into two joined by +, and it moves an over-long trailing comment onto its own line above. Lines
inside multi-line verbatim or raw strings, and preprocessor lines, are left alone. What it cannot wrap it lists.

    build/wrap-lines.py [--limit 120] [--check] FILE_OR_DIR...
"""
import os
import re
import sys

LIMIT = 120
LAST_SPANS = []  # the top-level string literals of the line scan() read last: [start, end, prefix]


def scan(line, state=None):
    """Yields (index, char, context) for each char; context is 'code', 'str', 'comment'. Tracks interpolation holes.

    Returns also the state at the end of the line: None, or 'verbatim'/'raw' when a multi-line literal is open.
    """
    ctx = []
    LAST_SPANS.clear()
    i = 0
    n = len(line)
    # stack of frames: ('code', depth_braces) or ('str', kind) where kind in regular, verbatim, interp, interpverb, raw
    stack = [('code', 0)]
    if state:
        stack.append(('str', state))
    while i < n:
        top = stack[-1]
        c = line[i]
        if top[0] == 'code':
            if line.startswith('//', i):
                ctx.extend([(j, 'comment') for j in range(i, n)])
                return ctx, None
            if line.startswith('/*', i):
                end = line.find('*/', i + 2)
                end = n if end < 0 else end + 2
                ctx.extend([(j, 'comment') for j in range(i, end)])
                i = end
                continue
            m = re.match(r'(\$+)?(@)?("""+)|(\$@|@\$|\$|@)?"', line[i:])
            if line.startswith('"""', i) or re.match(r'\$+"""', line[i:]):
                return None, 'raw'
            if m and m.group(4) is not None or (m and line[i] == '"'):
                pre = m.group(4) or ''
                kind = {'': 'regular', '@': 'verbatim', '$': 'interp', '$@': 'interpverb', '@$': 'interpverb'}[pre]
                for j in range(i, i + len(pre) + 1):
                    ctx.append((j, 'str'))
                if len(stack) == 1:
                    LAST_SPANS.append([i, None, pre])
                i += len(pre) + 1
                stack.append(('str', kind))
                continue
            if c == "'":
                m2 = re.match(r"'(\\.|[^'\\])+'", line[i:])
                if m2:
                    ctx.extend([(j, 'str') for j in range(i, i + len(m2.group(0)))])
                    i += len(m2.group(0))
                    continue
            if c == '{':
                stack[-1] = ('code', top[1] + 1)
            elif c == '}':
                if top[1] == 0 and len(stack) > 1:
                    # end of an interpolation hole
                    stack.pop()
                    ctx.append((i, 'str'))
                    i += 1
                    continue
                stack[-1] = ('code', top[1] - 1)
            # code inside an interpolation hole is not a place to break
            ctx.append((i, 'code' if len(stack) == 1 else 'hole'))
            i += 1
        else:
            kind = top[1]
            if kind in ('regular', 'interp') and c == '\\':
                ctx.extend([(i, 'str'), (i + 1, 'str')])
                i += 2
                continue
            if kind in ('verbatim', 'interpverb') and line.startswith('""', i):
                ctx.extend([(i, 'str'), (i + 1, 'str')])
                i += 2
                continue
            if kind in ('interp', 'interpverb') and line.startswith('{{', i):
                ctx.extend([(i, 'str'), (i + 1, 'str')])
                i += 2
                continue
            if c == '"':
                stack.pop()
                ctx.append((i, 'str' if len(stack) == 1 else 'nstr'))
                i += 1
                if len(stack) == 1 and LAST_SPANS and LAST_SPANS[-1][1] is None:
                    LAST_SPANS[-1][1] = i
                continue
            if kind in ('interp', 'interpverb') and c == '{':
                ctx.append((i, 'str'))
                stack.append(('code', 0))
                i += 1
                continue
            # a literal's own text, or a literal nested in a hole of another ('nstr': never split)
            ctx.append((i, 'str' if len(stack) == 2 else 'nstr'))
            i += 1
    open_kind = None
    for f in stack[1:]:
        if f[0] == 'str' and f[1] in ('verbatim', 'interpverb'):
            open_kind = 'verbatim'
    if any(f[0] == 'str' and f[1] in ('regular', 'interp') for f in stack[1:]):
        return None, 'broken'
    return ctx, open_kind


BREAK_AFTER = [', ', ' => ', ' && ', ' || ', ' ?? ', ' + ', ' ? ', ' : ', ' = ', ' is ', ' or ', ' and ']


# A call that takes a FormattableString (Spectre's *Interpolated, FormattableString.Invariant): "a" + "b" of
# interpolated strings is a string, so the literals of such a statement are not split.
FORMATTABLE = re.compile(r'Interpolated\(|FormattableString|(?<![\w.])Invariant\(')
CURRENT = {'indent': None, 'no_split': False, 'parts': False}
# A call that takes its pieces as separate arguments (the CLI's MarkupLineParts): pieces joined by ',', not '+'.
PARTS = re.compile(r'MarkupLineParts\(')  # what the line being wrapped inherits from the line it came from


def continuation_indent(line):
    if CURRENT['indent'] is not None:
        return CURRENT['indent']
    return len(line) - len(line.lstrip(' ')) + 4


def wrap_code(line, ctx, limit):
    """Breaks a code line before the limit: after a comma or an operator, else after an opening parenthesis, else at
    any space in code; never inside a literal or a hole, nor right after new, throw, return or await."""
    indent = continuation_indent(line)
    base = len(line) - len(line.lstrip(' '))
    comma, operator, paren, space = None, None, None, None
    for pos in range(min(limit, len(line) - 1), base + 8, -1):
        if ctx[pos][1] != 'code' and not (line[pos - 1] == '(' and ctx[pos - 1][1] == 'code'):
            continue
        before = line[:pos + 1] if line[pos] == ' ' else line[:pos]
        if re.search(r'\b(new|throw|return|await|yield|var|is|not|using|static|readonly)\s*$', line[:pos]):
            continue
        if line[pos] == ' ':
            if comma is None and before.endswith(', '):
                comma = pos
            elif operator is None and (any(before.endswith(op) for op in BREAK_AFTER) or line[pos + 1] == '.'):
                operator = pos
            elif space is None:
                space = pos
        elif line[pos - 1] == '(' and paren is None and line[pos] != ')':
            paren = pos
    best = next((p for p in (comma, operator, paren, space) if p is not None), None)
    if best is None:
        return None
    head = line[:best].rstrip()
    tail = ' ' * indent + line[best:].lstrip()
    if len(tail) >= len(line) or not head.strip():
        return None
    return [head, tail]


def split_literal(line, ctx, limit):
    """Splits the string literal that crosses the limit: "a b" -> "a " + "b" (interpolated: $"a " + $"b")."""
    if CURRENT['no_split'] or FORMATTABLE.search(line):
        return None
    scan(line)
    for start, end, pre in [tuple(x) for x in LAST_SPANS]:
        if end is None or start >= limit - 12 or end < limit - 8:
            continue
        if '@' in pre:
            return None
        body_start = start + len(pre) + 1
        # the last space of the literal's own text (ctx: 'str'; holes and nested literals are not) that leaves room
        # for '" +'
        cut = None
        for pos in range(body_start, end - 1):
            if ctx[pos][1] == 'str' and line[pos] == ' ' and pos + 4 <= limit and pos > body_start + 10:
                cut = pos
        if cut is None:
            return None
        head = line[:cut + 1] + ('",' if CURRENT['parts'] else '" +')
        tail = ' ' * continuation_indent(line) + pre + '"' + line[cut + 1:]
        return [head, tail]
    return None


def wrap_comment_line(line, limit):
    m = re.match(r'^(\s*)(///|//)( ?)(.*)$', line)
    if not m:
        return None
    indent, slashes, space, text = m.groups()
    prefix = indent + slashes + ' '
    room = limit - len(prefix)
    cut = text.rfind(' ', 0, room + 1)
    if cut <= 0:
        return None
    return [prefix + text[:cut].rstrip(), prefix + text[cut + 1:]]


def wrap_line(line, state, limit):
    """Lines that replace one long line, or None."""
    stripped = line.lstrip()
    if stripped.startswith('#'):
        return None
    if stripped.startswith('//'):
        return wrap_comment_line(line, limit)
    ctx, _ = scan(line, state)
    if ctx is None or len(ctx) != len(line):
        return None
    # a trailing comment that makes the line long moves above it
    com = next((i for i, (_, k) in enumerate(ctx) if k == 'comment'), None)
    if com is not None and line[com:].startswith('//'):
        code = line[:com].rstrip()
        if code.strip():
            indent = ' ' * (len(line) - len(line.lstrip(' ')))
            return [indent + line[com:].strip(), code]
    if com is not None:
        return None
    return wrap_code(line, ctx, limit) or split_literal(line, ctx, limit)


def process(path, limit, check):
    with open(path, encoding='utf-8') as f:
        text = f.read()
    bom = text.startswith('\ufeff')
    if bom:
        text = text[1:]
    lines = text.split('\n')
    out = []
    state = None
    left = []
    # (text, continuation indent or None, no literal split): a continuation keeps its statement's indent and rules
    queue = [(x, None, False, False) for x in lines]
    guard = 0
    while queue:
        line, cont, no_split, parts = queue.pop(0)
        guard += 1
        if guard > 20 * len(lines) + 1000:
            raise RuntimeError(f'{path}: no progress')
        if len(line.rstrip('\r')) > limit and state is None:
            # a statement that began above in a FormattableString call
            prev = next((x for x in reversed(out) if x.strip()), '')
            inherited = bool(FORMATTABLE.search(prev)) and not prev.rstrip().endswith((';', '{', '}'))
            no_split = no_split or inherited
            parts = parts or bool(PARTS.search(line)) or (
                bool(PARTS.search(prev)) and not prev.rstrip().endswith((';', '{', '}')))
            CURRENT['indent'], CURRENT['no_split'], CURRENT['parts'] = cont, no_split, parts
            new = wrap_line(line, state, limit)
            if new and all(len(x) < len(line) for x in new):
                moved_comment = new[0].lstrip().startswith('//') and not line.lstrip().startswith('//')
                if line.lstrip().startswith('//'):
                    items = [(new[0], None, False, False), (new[1], None, False, False)]
                elif moved_comment:
                    items = [(new[0], None, False, False), (new[1], cont, no_split, parts)]
                else:
                    flag = no_split or bool(FORMATTABLE.search(line))
                    items = [(new[0], cont, flag, parts), (new[1], continuation_indent(line), flag, parts)]
                queue[0:0] = items
                continue
            left.append((len(out) + 1, line))
        out.append(line)
        _, state = scan(line, state) if not line.lstrip().startswith('#') else (None, state)
        if state == 'broken':
            state = None
        if state == 'raw' and line.count('"""') % 2 == 0:
            state = None  # raw literals that open and close on this line
        if state == 'raw':
            # kept as they are up to the line that closes the raw literal: an odd count of quotes toggles it
            # (an even count on a line closes one literal and opens the next, or leaves it open)
            while queue:
                inner = queue.pop(0)[0]
                out.append(inner)
                if inner.count('"""') % 2 == 1:
                    break
            state = None
    new_text = '\n'.join(out)
    changed = new_text != text
    if changed and not check:
        with open(path, 'w', encoding='utf-8') as f:
            f.write(('\ufeff' if bom else '') + new_text)
    return changed, left


def main(argv):
    limit = LIMIT
    check = False
    paths = []
    i = 0
    while i < len(argv):
        if argv[i] == '--limit':
            limit = int(argv[i + 1])
            i += 2
            continue
        if argv[i] == '--check':
            check = True
        else:
            paths.append(argv[i])
        i += 1
    files = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs[:] = [d for d in dirs if d not in ('bin', 'obj')]
                files += [os.path.join(root, n) for n in names if n.endswith('.cs')]
        else:
            files.append(p)
    remaining = 0
    changed_files = 0
    for path in sorted(files):
        changed, left = process(path, limit, check)
        changed_files += changed
        for number, line in left:
            remaining += 1
            print(f'{path}:{number}: {len(line)} characters: {line.strip()[:80]}')
    print(f'{changed_files} file(s) {"would change" if check else "changed"}, {remaining} line(s) left over {limit}',
          file=sys.stderr)
    return 1 if (check and (changed_files or remaining)) or remaining else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
