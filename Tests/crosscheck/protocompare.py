"""Field-by-field comparison of protobuf messages, for round-trip checks.

Value semantics: an unset scalar equals its default (scm writes "" and 0 as absent); message-typed
fields compare by presence, then recursively; float and double fields compare by their bytes (so
-0.0 differs from 0.0, and NaNs are equal only with the same payload). Returns the path of the
first difference, or None.
"""
import struct

from google.protobuf.descriptor import FieldDescriptor


def _scalar_equal(a, b):
    if isinstance(a, float) or isinstance(b, float):
        # Python holds a float field's value as a double (exactly, payload included): compare its bytes.
        return isinstance(a, float) and isinstance(b, float) and struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


def first_difference(a, b, path=""):
    desc = a.DESCRIPTOR
    for f in desc.fields:
        name = f.name
        p = f"{path}.{name}" if path else name
        is_msg = f.type == FieldDescriptor.TYPE_MESSAGE
        repeated = f.is_repeated if hasattr(f, "is_repeated") else f.label == FieldDescriptor.LABEL_REPEATED
        va, vb = getattr(a, name), getattr(b, name)
        if repeated:
            if len(va) != len(vb):
                return f"{p}: {len(va)} vs {len(vb)} entries"
            for i, (x, y) in enumerate(zip(va, vb)):
                if is_msg:
                    d = first_difference(x, y, f"{p}[{i}]")
                    if d:
                        return d
                elif not _scalar_equal(x, y):
                    return f"{p}[{i}]: {x!r} vs {y!r}"
        elif is_msg:
            ha, hb = a.HasField(name), b.HasField(name)
            if ha != hb:
                return f"{p}: present {ha} vs {hb}"
            if ha:
                d = first_difference(va, vb, p)
                if d:
                    return d
        elif not _scalar_equal(va, vb):
            return f"{p}: {va!r} vs {vb!r}"
    for oneof in desc.oneofs:
        if a.WhichOneof(oneof.name) != b.WhichOneof(oneof.name):
            return f"{path}.{oneof.name}: {a.WhichOneof(oneof.name)} vs {b.WhichOneof(oneof.name)}"
    return None
