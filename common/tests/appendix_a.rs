//! The Appendix A data is tested against the RFC's own text (the fixture is the list of
//! names copied from rfc7540.txt pages 83-94, in order).

use h2lab_common::appendix_a::APPENDIX_A;
use h2lab_common::profiles::{on_appendix_a, SUITES};

#[test]
fn appendix_a_matches_the_rfc_text_name_for_name() {
    let rfc = include_str!("fixtures/rfc7540-appendix-a.txt");
    let names: Vec<&str> = rfc.lines().filter(|l| !l.trim().is_empty()).collect();
    let ours: Vec<&str> = APPENDIX_A.iter().map(|&(_, n)| n).collect();
    assert_eq!(ours, names);
    assert_eq!(ours.len(), 276);
    let mut codes: Vec<u16> = APPENDIX_A.iter().map(|&(c, _)| c).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), APPENDIX_A.len(), "code points are unique");
}

/// The code points agree with OpenSSL's own names for the suites the profiles use.
#[test]
fn code_points_agree_with_openssl_standard_names() {
    use openssl::ssl::{Ssl, SslContext, SslMethod};
    let mut b = SslContext::builder(SslMethod::tls()).unwrap();
    b.set_cipher_list("ALL:@SECLEVEL=0").unwrap();
    let ctx = b.build();
    let ssl = Ssl::new(&ctx).unwrap();
    let mut checked = 0;
    for &(_, code) in SUITES {
        let list = ssl
            .bytes_to_cipher_list(&code.to_be_bytes(), false)
            .unwrap();
        let iana = list.suites[0].standard_name().unwrap();
        let listed = APPENDIX_A.iter().find(|&&(c, _)| c == code);
        assert_eq!(listed.is_some(), on_appendix_a(code));
        if let Some(&(_, name)) = listed {
            assert_eq!(name, iana, "{code:#06x}");
            checked += 1;
        } else {
            assert!(
                iana.contains("GCM") || iana.contains("CHACHA20"),
                "{iana} is neither AEAD nor on Appendix A"
            );
        }
    }
    assert!(checked >= 15);
}
