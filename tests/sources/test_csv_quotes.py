"""A CSV line whose quote never closes: that line is one bad row, named by its line; every other row is kept."""

from __future__ import annotations

from clipfactory.sources import ingest_manifest

HEADER = "label,youtube_id,time_start,time_end,split\n"
GOOD = [
    "abseiling,-3B32lodo2M,59,69,val\n",
    "air drumming,--nQbRBEz2s,104,114,val\n",
    "applauding,-0ng2mdvtzU,15,25,val\n",
    "archery,-1B-oRSbqH8,0,10,val\n",
    "arm wrestling,-3pWh8HP5cM,1,11,val\n",
]
STRAY = '"answering questions,--ZFyqNuBAE,0,10,val\n'


def _errors(catalog):
    return [
        (r["line"], r["reason"], r["raw"])
        for r in catalog.query("SELECT line, reason, raw FROM ingest_errors ORDER BY line")
    ]


def _ids(catalog):
    return sorted(r["platform_id"] for r in catalog.query("SELECT platform_id FROM sources"))


def test_one_unbalanced_quote_rejects_its_line_only(catalog, tmp_path):
    # Line 1 is the header, the stray quote is on line 4; DuckDB's sniffer gives up on this file.
    path = tmp_path / "kinetics400_val.csv"
    path.write_text(HEADER + GOOD[0] + GOOD[1] + STRAY + GOOD[2] + GOOD[3] + GOOD[4])
    s = ingest_manifest(catalog, path, dataset="kinetics-400")
    assert (s.rows_total, s.rows_ok, s.rows_bad) == (6, 5, 1)
    assert [(e.line, e.reason) for e in s.errors] == [(4, "stray or unterminated quote")]
    assert _errors(catalog) == [(4, "stray or unterminated quote", STRAY.rstrip("\n"))]
    assert _ids(catalog) == sorted(
        ["-3B32lodo2M", "--nQbRBEz2s", "-0ng2mdvtzU", "-1B-oRSbqH8", "-3pWh8HP5cM"]
    )
    # The rows after the bad one keep their own lines.
    lines = catalog.query("SELECT line, label FROM clip_spans ORDER BY line")
    assert lines == [
        {"line": 2, "label": "abseiling"},
        {"line": 3, "label": "air drumming"},
        {"line": 5, "label": "applauding"},
        {"line": 6, "label": "archery"},
        {"line": 7, "label": "arm wrestling"},
    ]


def test_stray_quotes_after_the_sniffed_part_beside_quoted_newlines(catalog, tmp_path):
    # 30,000 good rows first (past DuckDB's sniffing sample), then a quoted field with a newline (fine),
    # two stray quotes and a quoted field with a comma after them.
    path = tmp_path / "kinetics400_big.csv"
    good = [f"label{i},{i:011d},1,5,val\n" for i in range(30_000)]
    tail = [
        'multi,"a\nb",1,5,val\n',  # lines 30002-30003: one record with a quoted newline, and a bad id
        'stray one,"AAAAAAAAAAA,1,5,val\n',  # line 30004
        "after one,BBBBBBBBBBB,1,5,val\n",
        '"stray two,CCCCCCCCCCC,1,5,val\n',  # line 30006
        '"quoted, comma",DDDDDDDDDDD,1,5,val\n',
        "last,EEEEEEEEEEE,1,5,val\n",
    ]
    path.write_text(HEADER + "".join(good) + "".join(tail))
    s = ingest_manifest(catalog, path, dataset="kinetics-400")
    assert (s.rows_total, s.rows_bad) == (30_000 + 6, 3)
    errors = _errors(catalog)
    assert [(line, reason.split(":")[0]) for line, reason, _ in errors] == [
        (30_002, "bad YouTube id a\nb"),
        (30_004, "stray or unterminated quote"),
        (30_006, "stray or unterminated quote"),
    ]
    assert errors[1][2] == tail[1].rstrip("\n") and errors[2][2] == tail[3].rstrip("\n")
    assert catalog.query(
        "SELECT line, label FROM clip_spans WHERE source_id IN "
        "('youtube:BBBBBBBBBBB', 'youtube:DDDDDDDDDDD', 'youtube:EEEEEEEEEEE') ORDER BY line"
    ) == [
        {"line": 30_005, "label": "after one"},
        {"line": 30_007, "label": "quoted, comma"},
        {"line": 30_008, "label": "last"},
    ]
    assert catalog.scalar("SELECT count(*) FROM sources") == 30_000 + 3


def test_two_adjacent_stray_quotes_reject_both_lines(catalog, tmp_path):
    path = tmp_path / "kinetics400_val.csv"
    path.write_text(HEADER + GOOD[0] + STRAY + STRAY + GOOD[1] + GOOD[2])
    s = ingest_manifest(catalog, path, dataset="kinetics-400")
    assert (s.rows_total, s.rows_ok, s.rows_bad) == (5, 3, 2)
    assert _errors(catalog) == [
        (3, "stray or unterminated quote", STRAY.rstrip("\n")),
        (4, "stray or unterminated quote", STRAY.rstrip("\n")),
    ]
    assert catalog.query("SELECT line, label FROM clip_spans ORDER BY line") == [
        {"line": 2, "label": "abseiling"},
        {"line": 5, "label": "air drumming"},
        {"line": 6, "label": "applauding"},
    ]


def test_stray_quotes_in_a_crlf_file_past_its_first_data_line(catalog, tmp_path):
    # CR LF endings, written out by hand. Line 1 header, 2 good, 3 stray, 4 good, 5 and 6 stray, 7 good.
    path = tmp_path / "kinetics400_val.csv"
    path.write_bytes(
        b"label,youtube_id,time_start,time_end,split\r\n"
        b"abseiling,-3B32lodo2M,59,69,val\r\n"
        b'"answering questions,--ZFyqNuBAE,0,10,val\r\n'
        b"air drumming,--nQbRBEz2s,104,114,val\r\n"
        b'"applauding,-0ng2mdvtzU,15,25,val\r\n'
        b'"archery,-1B-oRSbqH8,0,10,val\r\n'
        b"arm wrestling,-3pWh8HP5cM,1,11,val\r\n"
    )
    s = ingest_manifest(catalog, path, dataset="kinetics-400")
    assert (s.rows_total, s.rows_ok, s.rows_bad) == (6, 3, 3)
    assert _errors(catalog) == [
        (3, "stray or unterminated quote", '"answering questions,--ZFyqNuBAE,0,10,val'),
        (5, "stray or unterminated quote", '"applauding,-0ng2mdvtzU,15,25,val'),
        (6, "stray or unterminated quote", '"archery,-1B-oRSbqH8,0,10,val'),
    ]
    assert catalog.query(
        "SELECT line, label, platform_id FROM clip_spans JOIN sources USING (source_id) ORDER BY line"
    ) == [
        {"line": 2, "label": "abseiling", "platform_id": "-3B32lodo2M"},
        {"line": 4, "label": "air drumming", "platform_id": "--nQbRBEz2s"},
        {"line": 7, "label": "arm wrestling", "platform_id": "-3pWh8HP5cM"},
    ]


def test_a_stray_quote_closed_by_another_lines_later_keeps_the_rows_between(catalog, tmp_path):
    # Line 5 opens a quote, line 8 has a stray one that closes it: as CSV, lines 5-8 are one valid row
    # whose label holds three lines. Lines 6 and 7 are rows of their own and must be kept.
    path = tmp_path / "kinetics400_val.csv"
    lines = [
        HEADER,
        GOOD[0],  # 2
        GOOD[1],  # 3
        GOOD[2],  # 4
        'archery,"-1B-oRSbqH8,0,10,val\n',  # 5
        GOOD[4],  # 6
        "bowling,-3oc0XsKuXw,5,15,val\n",  # 7
        'curling,-5Gkn3Gb"Ic,1,11,val\n',  # 8
        "dancing ballet,-6Hk0D9LuzM,2,12,val\n",  # 9
    ]
    path.write_text("".join(lines))
    s = ingest_manifest(catalog, path, dataset="kinetics-400")
    assert (s.rows_total, s.rows_ok, s.rows_bad) == (8, 6, 2)
    assert _errors(catalog) == [
        (5, "stray or unterminated quote", lines[4].rstrip("\n")),
        (8, "stray or unterminated quote", lines[7].rstrip("\n")),
    ]
    assert catalog.query("SELECT line, label FROM clip_spans ORDER BY line") == [
        {"line": 2, "label": "abseiling"},
        {"line": 3, "label": "air drumming"},
        {"line": 4, "label": "applauding"},
        {"line": 6, "label": "arm wrestling"},
        {"line": 7, "label": "bowling"},
        {"line": 9, "label": "dancing ballet"},
    ]


def test_two_neighbouring_lines_joined_by_stray_quotes_are_both_bad_rows(catalog, tmp_path):
    path = tmp_path / "kinetics400_val.csv"
    a = 'archery,"-1B-oRSbqH8,0,10,val\n'  # 3: opens a quote
    b = 'bowling,-3oc0XsKuXw",5,15,val\n'  # 4: closes it
    path.write_text(HEADER + GOOD[0] + a + b + GOOD[1])
    s = ingest_manifest(catalog, path, dataset="kinetics-400")
    assert (s.rows_total, s.rows_ok, s.rows_bad) == (4, 2, 2)
    assert [(line, reason) for line, reason, _ in _errors(catalog)] == [
        (3, "stray or unterminated quote"),
        (4, "stray or unterminated quote"),
    ]
    assert _ids(catalog) == sorted(["-3B32lodo2M", "--nQbRBEz2s"])


def test_a_quoted_label_over_three_lines_that_are_not_rows_stays_one_row(catalog, tmp_path):
    # A real multi-line field: its lines do not split into a row's five fields, so nothing is taken apart.
    path = tmp_path / "kinetics400_val.csv"
    path.write_text(HEADER + GOOD[0] + '"juggling\nballs, clubs\nand rings",-7kbO0v4hag,0,10,val\n' + GOOD[1])
    s = ingest_manifest(catalog, path, dataset="kinetics-400")
    assert (s.rows_total, s.rows_ok, s.rows_bad) == (3, 3, 0)
    assert catalog.query("SELECT line, label FROM clip_spans ORDER BY line") == [
        {"line": 2, "label": "abseiling"},
        {"line": 3, "label": "juggling\nballs, clubs\nand rings"},
        {"line": 6, "label": "air drumming"},
    ]
