//! HdrHistogram interval logs (`.hlog`, V2 compressed histograms): one interval per second,
//! one tagged histogram per kind, readable by HdrHistogram's HistogramLogProcessor and
//! HistogramLogAnalyzer. Values are microseconds.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer, V2Serializer};
use hdrhistogram::Histogram;

use super::{Interval, Kind};
use crate::output::atomic_write;

/// One interval of the measured phase, with its histograms encoded (V2, as in the log).
/// A live interval holds 1.3 MB of histograms; encoded, a second takes a few kilobytes,
/// so an hour-long run keeps its per-second log in tens of megabytes, not gigabytes.
#[derive(Debug, Clone)]
pub struct TimedInterval {
    /// Offset from the start of the measured phase.
    pub start: Duration,
    /// Length.
    pub length: Duration,
    /// The non-empty histograms, by kind.
    histograms: Vec<(Kind, Encoded)>,
}

#[derive(Debug, Clone)]
enum Encoded {
    V2(Vec<u8>),
    /// A histogram V2 cannot encode (a count above i64::MAX): kept as it is.
    Raw(Histogram<u64>),
}

impl TimedInterval {
    /// Keeps `data`'s histograms for the log.
    pub fn new(start: Duration, length: Duration, data: &Interval) -> TimedInterval {
        let mut serializer = V2Serializer::new();
        let histograms = Kind::ALL
            .iter()
            .map(|&kind| (kind, data.get(kind)))
            .filter(|(_, h)| !h.is_empty())
            .map(|(kind, h)| {
                let mut bytes = Vec::new();
                let encoded = match serializer.serialize(h, &mut bytes) {
                    Ok(_) => Encoded::V2(bytes),
                    Err(_) => Encoded::Raw(h.clone()),
                };
                (kind, encoded)
            })
            .collect();
        TimedInterval {
            start,
            length,
            histograms,
        }
    }

    /// The histogram of `kind`, if anything was recorded in it.
    pub fn histogram(&self, kind: Kind) -> Option<Histogram<u64>> {
        let (_, encoded) = self.histograms.iter().find(|(k, _)| *k == kind)?;
        match encoded {
            // Encoded by this process a moment ago: decoding cannot fail.
            Encoded::V2(bytes) => Deserializer::new().deserialize(&mut &bytes[..]).ok(),
            Encoded::Raw(h) => Some(h.clone()),
        }
    }
}

/// Kinds written to the log (connection set-up times are per connection, not per second,
/// but are still logged so totals can be rebuilt).
pub const LOGGED: [Kind; 7] = Kind::ALL;

/// Renders the interval log.
pub fn render(start: SystemTime, intervals: &[TimedInterval]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment("h2lab interval log: values in microseconds; tags: latency, service, ttfb, connect, tls, error-latency, scheduler-lag")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut out, &mut serializer)?;
        for iv in intervals {
            for kind in LOGGED {
                let Some(h) = iv.histogram(kind) else {
                    continue;
                };
                log.write_histogram(&h, iv.start, iv.length, Tag::new(kind.tag()))
                    .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
            }
        }
    }
    Ok(out)
}

/// Writes the interval log to `path` (write then rename: never half-written).
pub fn write(path: &Path, start: SystemTime, intervals: &[TimedInterval]) -> std::io::Result<()> {
    let bytes = render(start, intervals)?;
    atomic_write(path, |f| f.write_all(&bytes))
}

/// One tagged histogram of an interval log, with its start offset in seconds.
pub struct LoggedInterval {
    /// Seconds from the log's start.
    pub start_s: f64,
    /// Length of the interval, seconds.
    pub length_s: f64,
    /// Tag (`latency`, `service`...).
    pub tag: String,
    /// The interval's histogram.
    pub histogram: Histogram<u64>,
}

/// Reads every interval of a log, in order.
pub fn read_intervals(bytes: &[u8]) -> Result<Vec<LoggedInterval>, String> {
    let mut out = Vec::new();
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(bytes) {
        let entry = entry.map_err(|e| format!("bad interval log: {e:?}"))?;
        if let LogEntry::Interval(ilh) = entry {
            let tag = ilh
                .tag()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default();
            let raw = base64_decode(ilh.encoded_histogram())?;
            let histogram: Histogram<u64> = de
                .deserialize(&mut &raw[..])
                .map_err(|e| format!("bad histogram in interval log: {e:?}"))?;
            out.push(LoggedInterval {
                start_s: ilh.start_timestamp().as_secs_f64(),
                length_s: ilh.duration().as_secs_f64(),
                tag,
                histogram,
            });
        }
    }
    Ok(out)
}

/// Reads a log and adds up its intervals per tag.
pub fn read_totals(bytes: &[u8]) -> Result<BTreeMap<String, Histogram<u64>>, String> {
    let mut totals: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for i in read_intervals(bytes)? {
        match totals.get_mut(&i.tag) {
            Some(t) => t.add(&i.histogram).map_err(|e| format!("{e:?}"))?,
            None => {
                totals.insert(i.tag, i.histogram);
            }
        }
    }
    Ok(totals)
}

fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut lookup = [255u8; 256];
    for (i, c) in ALPHABET.iter().enumerate() {
        lookup[*c as usize] = i as u8;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = lookup[c as usize];
        if v == 255 {
            return Err(format!("bad base64 byte {c:#x} in interval log"));
        }
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Recorder;
    use std::time::Instant;

    #[test]
    fn a_kept_second_takes_kilobytes_not_the_live_megabyte() {
        let t = Instant::now();
        let mut r = Recorder::default();
        // 20,000 requests spread from 1 us to 20 s: thousands of distinct buckets.
        for i in 0..20_000u64 {
            r.answered(t, Duration::from_micros(1 + i * i / 20), 200, false);
        }
        let data = r.take_interval();
        let live: usize = data.hist.iter().map(|h| h.distinct_values() * 8).sum();
        let kept = TimedInterval::new(Duration::ZERO, Duration::from_secs(1), &data);
        let bytes: usize = kept
            .histograms
            .iter()
            .map(|(_, e)| match e {
                Encoded::V2(b) => b.len(),
                Encoded::Raw(h) => h.distinct_values() * 8,
            })
            .sum();
        assert!(live > 1_000_000, "{live}");
        assert!(bytes < 64 * 1024, "{bytes} bytes kept per second");
        assert_eq!(
            kept.histogram(Kind::Latency).as_ref(),
            Some(data.get(Kind::Latency))
        );
    }

    #[test]
    fn interval_log_round_trips_with_totals_intact() {
        let t = Instant::now();
        let (mut intervals, mut datas) = (Vec::new(), Vec::new());
        for sec in 0..3u64 {
            let mut r = Recorder::default();
            for i in 0..(100 * (sec + 1)) {
                r.answered(t, Duration::from_micros(50 + i * 7), 200, false);
            }
            datas.push(r.take_interval());
            intervals.push(TimedInterval::new(
                Duration::from_secs(sec),
                Duration::from_secs(1),
                &datas[sec as usize],
            ));
        }
        for (iv, data) in intervals.iter().zip(&datas) {
            assert_eq!(
                iv.histogram(Kind::Latency).as_ref(),
                Some(data.get(Kind::Latency))
            );
            assert!(iv.histogram(Kind::ErrorLatency).is_none());
        }
        let bytes = render(SystemTime::now(), &intervals).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains("#[StartTime:") && text.contains("Tag=latency"),
            "{text}"
        );
        let totals = read_totals(&bytes).unwrap();
        assert_eq!(totals["latency"].len(), 600);
        let mut expected = datas[0].clone();
        expected.merge(&datas[1]);
        expected.merge(&datas[2]);
        assert_eq!(
            totals["latency"].value_at_quantile(0.99),
            expected.get(Kind::Latency).value_at_quantile(0.99)
        );
    }
}
