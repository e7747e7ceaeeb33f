# Runs the codec golden vectors and prints what the codec produced, as one JSON document on stdout.
# Written in the MicroPython common subset: the same script runs under CPython and the MicroPython unix port.
#
#   <python or micropython> vector_runner.py VECTORS.json PATH [package|flat]
# package: PATH is the repository root and the codec is imported as `firmware.codec` (how the hub uses it);
# flat: PATH is a directory holding codec.py and quantities.py side by side (how a board holds them).
import json
import sys


def load(argv):
    vectors_path, path = argv[1], argv[2]
    mode = argv[3] if len(argv) > 3 else "package"
    sys.path.insert(0, path)
    if mode == "flat":
        import codec
    else:
        from firmware import codec
    f = open(vectors_path)
    cases = json.loads(f.read())
    f.close()
    return codec, cases


def from_hex(s):
    return bytes([int(s[i:i + 2], 16) for i in range(0, len(s), 2)])


def to_hex(b):
    return "".join([f"{x:02x}" for x in b])


def run_case(codec, case):
    kind = case["kind"]
    if kind == "json_encode":
        return {"json": codec.encode_json(case["records"]).decode()}
    if kind == "json_decode":
        data = from_hex(case["hex"]) if "hex" in case else case["json"]
        records, errors = codec.decode_json(data)
        return {"records": records, "errors": [[i, why] for i, why in errors]}
    if kind == "compact_encode":
        return {"compact": to_hex(codec.encode_compact(case["seq"], case["values"]))}
    if kind == "compact_decode":
        return {"record": codec.decode_compact(from_hex(case["compact"]))}
    if kind == "status_encode":
        return {"status": to_hex(codec.encode_status(case["faults"], case["boot"], case["buffered"],
                                                     case.get("dropped", 0), case.get("untimed", 0),
                                                     case.get("refused", False), case.get("battery")))}
    if kind == "status_decode":
        return {"status": codec.decode_status(from_hex(case["hex"]))}
    if kind == "status_json_decode":
        return {"status": codec.decode_status_json(from_hex(case["hex"]) if "hex" in case else case["json"])}
    if kind == "cayenne_decode":
        channels = {}
        for k in case["channels"]:
            channels[int(k)] = case["channels"][k]
        rec, skipped = codec.decode_cayenne(from_hex(case["hex"]), channels)
        return {"record": rec, "skipped": skipped}
    return {"crash": "unknown case kind " + kind}


def main(argv):
    codec, cases = load(argv)
    results = {}
    for case in cases:
        try:
            got = run_case(codec, case)
        except codec.CodecError as e:
            got = {"error": str(e)}
        except Exception as e:  # a crash is a result too: the test shows it next to the expected value
            got = {"crash": f"{type(e).__name__}: {e}"}
        results[case["name"]] = got
    print(json.dumps(results))


main(sys.argv)
