"""What bench/fleet prints: its table (each figure, its baseline, its
target), notes, and the flat RESULT figures. `args` are bench/fleet's."""

import json

PROFILE_S = 10  # bench/fleet records the hub this long with --profile


def shown(phase, describe):
    if phase is None:
        return "not measured"
    if "error" in phase:
        return "not measured: " + phase["error"][:160]
    return describe(phase)


def ms(value):
    if value is None:
        return "-"
    return "unfinished" if value == float("inf") else f"{value:.1f}"


def verdict(phase, check):
    return "" if phase is None or "error" in phase else ("met" if check(phase) else "MISSED")


def table(figures, args):
    n, b, f = args.agents, args.baseline_agents, figures.get
    ready = lambda r: f"{r['ready']} of {r['agents']} in {r['seconds']:.1f} s"  # noqa: E731
    pings = lambda r: (f"{ms(r['p50_ms'])} / {ms(r['p99_ms'])} / {ms(r['max_ms'])} ms "  # noqa
                       f"({r['pings']} pongs, {r['pings_lost']} lost, {r['pings_pending']} "
                       f"waiting at the end; {r['connected']} connected)")
    cpu = lambda r: f"{r['hub_cpu_percent']:.1f}% of a core"  # noqa: E731
    polls = lambda r: (f"{r['polls_unanswered']} (closed {r['polls_closed']}, timed out "  # noqa
                       f"{r['polls_timed_out']}; answered {json.dumps(r['polls_answered'])}; "
                       f"could not connect {r['poll_connect_failures']})")
    rate = lambda r: (f"{r['submit_per_s'] or 0:.0f} / {r['per_s']:.0f} per s "  # noqa: E731
                      f"({r['verified']} of {r['tasks']} verified)")
    latency = lambda r: f"{ms(r['p50_ms'])} / {ms(r['p99_ms'])} ms"  # noqa: E731
    stored = lambda r: (f"{ms(r['p50_ms'])} / {ms(r['p99_ms'])} / {ms(r['max_ms'])} ms "  # noqa
                        f"({r['lines']} of {r['lines_expected']} lines stored, {r['verified']} "
                        f"of {r['agents']} verified; hub {r['hub_cpu_percent']:.0f}%, "
                        f"simulators {r.get('simulators_cpu_percent', 0):.0f}%)")
    full_idle, full_dispatch, ingested = f("full_idle"), f("full_dispatch"), f("ingest")
    return [
        ("figure", "measured", "baseline, same run", "target", ""),
        (f"{n} agents connected", shown(f("full_ready"), ready),
         f"{b}: " + shown(f("base_ready"), ready), "", ""),
        (f"idle {n}: ping round trip p50 / p99 / max", shown(full_idle, pings),
         f"{b}: " + shown(f("base_idle"), pings), "p99 <= 100 ms",
         verdict(full_idle, lambda r: r["p99_ms"] <= 100)),
        (f"idle {n}: hub CPU over {args.window_s:g} s", shown(full_idle, cpu),
         f"{b}: " + shown(f("base_idle"), cpu), "<= 25%",
         verdict(full_idle, lambda r: r["hub_cpu_percent"] <= 25)),
        (f"idle {n}: parked polls unanswered", shown(full_idle, polls),
         f"{b}: " + shown(f("base_idle"), polls), "0",
         verdict(full_idle, lambda r: r["polls_unanswered"] == 0)),
        (f"dispatch {n}: submits/s / tasks/s to final", shown(full_dispatch, rate),
         f"{b}: " + shown(f("base_dispatch"), rate), ">= 1000 tasks/s",
         verdict(full_dispatch, lambda r: r["per_s"] >= 1000)),
        (f"dispatch {n}: submit -> verified final p50 / p99", shown(full_dispatch, latency),
         f"{b}: " + shown(f("base_dispatch"), latency), "p99 <= 1 s",
         verdict(full_dispatch, lambda r: r["p99_ms"] <= 1000)),
        (f"ingest {args.ingest_agents} x {args.lines_per_s:g} lines/s x "
         f"{args.ingest_seconds:g} s: write -> stored p50 / p99 / max", shown(ingested, stored),
         f"{args.ingest_baseline_agents}: " + shown(f("base_ingest"), stored), "p99 <= 100 ms",
         verdict(ingested, lambda r: r["p99_ms"] is not None and r["p99_ms"] <= 100)),
    ]


def notes(figures, args, layout):
    lines = [f"layout: {layout}; {args.processes} simulator processes from 127.0.0.2 on"]
    left = figures.get("base_left")
    if left and "error" not in left:
        lines.append(f"after the baseline fleet left: hub {left['hub_cpu_percent']:.0f}% of a "
                     f"core for {left['s']:.1f} s, until its {left['parked']:.0f} parked polls "
                     "ended")
    for tag in ("base", "full"):
        idle = figures.get(f"{tag}_idle")
        if idle and "error" not in idle:
            lines.append(f"{tag} idle window: simulators {idle['simulators_cpu_percent']:.0f}% "
                         f"of a core, reconnects {idle['reconnects']}, pings cut "
                         f"{idle['pings_cut']}, hub metrics {json.dumps(idle['hub'])}")
            if "profile" in idle:
                lines.append(f"profile of the hub ({PROFILE_S} s): {idle['profile']['report']}")
                lines += ["  " + line for line in idle["profile"]["top"]]
        dispatched = figures.get(f"{tag}_dispatch")
        if dispatched and "refused_e_g" in dispatched:
            lines.append(f"{tag} dispatch: {dispatched['tasks'] - dispatched['accepted']} "
                         f"submits refused, e.g. {dispatched['refused_e_g']}")
    return lines


def flat(figures, args):
    """The RESULT: every scalar (and the poll answers) as phase_name."""
    result = {"agents": args.agents, "baseline_agents": args.baseline_agents,
              "ingest_agents": args.ingest_agents, "window_s": args.window_s}
    for key, value in figures.items():
        if not isinstance(value, dict):
            result[key] = round(value, 2) if isinstance(value, float) else value
            continue
        for name, item in value.items():
            if isinstance(item, float):
                item = None if item == float("inf") else round(item, 2)
            elif isinstance(item, dict) and name == "profile":
                item = item["report"]
            result[f"{key}_{name}"] = item
    return result
