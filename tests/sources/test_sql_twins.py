"""The SQL macros used by vectorised ingest agree with their Python twins."""

from __future__ import annotations

import duckdb
import pytest

from clipfactory import ids
from clipfactory.sources.sql import install_macros, time_to_ms

YOUTUBE_SPELLINGS = [
    "dQw4w9WgXcQ",
    " dQw4w9WgXcQ\t",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://www.youtube.com/watch/?v=dQw4w9WgXcQ",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=43s",
    "https://www.youtube.com/watch?feature=youtu.be&v=dQw4w9WgXcQ&list=PL1",
    "http://youtube.com/watch?v=dQw4w9WgXcQ#t=1m",
    "youtube.com/watch?v=dQw4w9WgXcQ",
    "www.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://m.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://music.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://youtu.be/dQw4w9WgXcQ",
    "https://youtu.be/dQw4w9WgXcQ?t=10",
    "youtu.be/dQw4w9WgXcQ",
    "https://www.youtube.com/shorts/dQw4w9WgXcQ",
    "https://www.youtube.com/embed/dQw4w9WgXcQ?start=3",
    "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ",
    "https://www.youtube.com/v/dQw4w9WgXcQ",
    "https://www.youtube.com/live/dQw4w9WgXcQ?si=abc",
    "HTTPS://WWW.YOUTUBE.COM/watch?v=dQw4w9WgXcQ",
    "https://YouTu.be/dQw4w9WgXcQ",
    "--07WQ2iBlw",
    "https://youtu.be/--07WQ2iBlw",
    # Not ids:
    "",
    "   ",
    "dQw4w9WgXc",
    "dQw4w9WgXcQQ",
    "dQw4w9Wg!cQ",
    "https://www.youtube.com/watch?v=dQw4w9WgXc",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQQ",
    "https://www.youtube.com/channel/UCabcdefghijk",
    "https://www.youtube.com/playlist?list=PLdQw4w9WgX",
    "https://vimeo.com/12345678901",
    "https://notyoutube.com/watch?v=dQw4w9WgXcQ",
    "ftp://youtu.be/dQw4w9WgXcQ",
]

URLS = [
    "https://Example.com/videos/a.mp4",
    "HTTP://EXAMPLE.com:80/a?b=1#frag",
    "https://example.com:443",
    "https://example.com:8443/x",
    "https://user:pw@Example.com/x?y=2",
    "http://example.com/path/?q",
    "https://example.com/a#only-fragment",
    "example.com/no-scheme#frag",
    "  https://example.com/padded  ",
]

TIMES = [
    "10",
    "0",
    "1.5",
    "-3",
    "1e2",
    ".5",
    "0:00:05.000",
    "00:01:02.5",
    "1:02:03",
    "12:30",
    "123:00:00.001",
    "PT00H00M17S",
    "PT1M5.5S",
    "P1DT1H",
    "PT0.001S",
    "pt10s",
    "nan",
    "inf",
    "abc",
    "1:2",
    "PT",
    "",
    " 7 ",
]


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    install_macros(c)
    yield c
    c.close()


@pytest.mark.parametrize("text", YOUTUBE_SPELLINGS)
def test_youtube_sql_agrees_with_python(con, text):
    got = con.execute("SELECT cf_yt(?)", [text]).fetchall()[0][0]
    assert got == ids.youtube_id(text)


def test_youtube_spellings_list_is_meaningful():
    found = [t for t in YOUTUBE_SPELLINGS if ids.youtube_id(t)]
    assert len(found) == 23 and len(YOUTUBE_SPELLINGS) - len(found) == 12


def test_youtube_sql_vectorised_over_a_table(con):
    import pyarrow as pa

    con.register("t", pa.table({"x": YOUTUBE_SPELLINGS}))
    got = [r[0] for r in con.execute("SELECT cf_yt(x) FROM t").fetchall()]
    con.unregister("t")
    assert got == [ids.youtube_id(t) for t in YOUTUBE_SPELLINGS]


@pytest.mark.parametrize("url", URLS)
def test_url_source_id_sql_agrees_with_python(con, url):
    assert con.execute("SELECT cf_norm_url(?)", [url]).fetchall()[0][0] == ids.normalise_url(url)
    assert "url:" + con.execute("SELECT cf_url_hash(?)", [url]).fetchall()[0][0] == ids.url_source_id(url)


@pytest.mark.parametrize("text", TIMES)
def test_time_sql_agrees_with_python(con, text):
    assert con.execute("SELECT cf_ms(?)", [text]).fetchall()[0][0] == time_to_ms(text)


def test_time_values():
    assert time_to_ms("0:00:05.000") == 5000
    assert time_to_ms("1:02:03") == 3723000
    assert time_to_ms("PT00H00M17S") == 17000
    assert time_to_ms("P1DT1H") == 90000000
    assert time_to_ms("1.5") == 1500
    assert time_to_ms("1500", "ms") == 1500
    assert time_to_ms("12:30", "s") is None
    assert time_to_ms("nan") is None and time_to_ms("abc") is None


@pytest.mark.parametrize(
    ("text", "unit"), [("1500", "ms"), ("1.5", "s"), ("00:00:01.5", "hms"), ("PT1.5S", "iso"), ("12:30", "s")]
)
def test_time_units_sql_agrees(con, text, unit):
    assert con.execute("SELECT cf_ms_unit(?, ?)", [text, unit]).fetchall()[0][0] == time_to_ms(text, unit)


def test_clip_id_sql_twin(con):
    got = con.execute(
        f"SELECT {ids.CLIP_ID_SQL} FROM (SELECT 'youtube:dQw4w9WgXcQ' AS source_id, 1500 AS start_ms, 9000 AS end_ms)"
    ).fetchall()[0][0]
    assert got == ids.clip_id("youtube:dQw4w9WgXcQ", 1500, 9000)
