use super::*;
use rstest::rstest;

#[rstest]
#[case("256Mi", Some(256 << 20))]
#[case("1Gi", Some(1 << 30))]
#[case("512M", Some(512_000_000))]
#[case("4096", Some(4096))]
#[case("12Qi", None)]
#[case("", None)]
fn quantities(#[case] input: &str, #[case] bytes: Option<u64>) {
    assert_eq!(parse_quantity(input), bytes);
}
