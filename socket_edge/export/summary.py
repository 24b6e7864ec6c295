"""The lines `socket-edge export` prints for an export's summary (no torch: an engine built from an
.onnx on a device without it prints them too)."""

from __future__ import annotations


def describe(summary: dict) -> tuple[list[str], list[str]]:
    """The export summary as readable lines, and warnings (fp32 parity beyond its goal)."""
    mb = summary["size_bytes"] / 1e6
    lines = [
        f"wrote {summary['file']} ({mb:.1f} MB, {summary['format']} {summary['precision']}, opset {summary['opset']}, "
        f"batch {summary['batch']}) in {summary['seconds']:.1f} s",
        "  members  " + ", ".join(f"ζ={m['zeta']:.3f} {m['arch']}" for m in summary["members"]),
        f"  graph    {summary['batchnorm_folded']} BatchNorm layers folded, {summary['batchnorm_left']} left; "
        + (f"simplified with {summary['simplified_with']}" if summary["simplified_with"]
           else "not simplified (pip install onnxslim)"),
    ]
    warnings = []
    reference = summary.get("reference", "PyTorch")  # what the parity is measured against
    reference_accuracy = "PyTorch fp32" if reference == "PyTorch" else reference
    for result in summary["parity"]:
        goal = f" (goal ≤ {result['goal']:.0e})" if "goal" in result else ""
        accuracy = (f", accuracy {result['accuracy']:.2f}% ({reference_accuracy} {result['accuracy_fp32']:.2f}%)"
                    if "accuracy" in result else "")
        lines.append(f"  parity   {result['precision']} vs {reference} on {result['frames']}: max |Δp| "
                     f"{result['max_abs_diff']:.2e}{goal}, argmax agreement {result['argmax_agreement']:.1f}%{accuracy}")
        if result.get("ok") is False:
            warnings.append(f"fp32 parity {result['max_abs_diff']:.2e} is beyond the goal {result['goal']:.0e}; "
                            f"{summary['file']} was written, check it with socket-edge eval before deploying it")
    int8 = summary.get("int8")
    if int8:
        calib = int8["calibration"]
        lines.append(f"  int8     calibrated on {calib['frames']} of {calib['of']} images of {calib['folder']} "
                     f"({calib['method']}, seed {calib['seed']}), {int8['scheme']} scheme; "
                     f"{int8['float_nodes']} nodes kept float (input normalisation, softmax and ζ sum)")
    prune = summary.get("prune")
    if prune:
        dropped = ", ".join(f"{d['arch']} (ζ {d['zeta']:.3f})" for d in prune["dropped"]) or "nothing"
        zeta = "/".join(f"{z:.3f}" for z in prune["zeta_after"])
        if prune["accuracy_before"] is None:
            effect = f"argmax agreement with the full ensemble {prune['agreement']['argmax_agreement']:.1f}%"
        else:
            effect = f"accuracy {prune['accuracy_before']:.2f}% → {prune['accuracy_after']:.2f}%"
        lines.append(f"  pruned   ζ < {prune['threshold']:g}: dropped {dropped}; ζ now {zeta}; {effect} "
                     f"on {prune['frames']}")
    return lines, warnings
