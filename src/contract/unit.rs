//! Who may contract (art. 11) and what one contract unit is (art. 12).

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::ContractError;

/// The kind of contractor. Art. 11 (契約の種別): the service is "for corporations /
/// public bodies only" (「法人／公共機関向け」のみ); other organisations and individuals
/// are refused. There is deliberately no third variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContractKind {
    /// 法人
    Corporation,
    /// 公共機関
    PublicBody,
}

impl ContractKind {
    /// The canonical spelling, as stored and shown.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ContractKind::Corporation => "corporation",
            ContractKind::PublicBody => "public-body",
        }
    }

    /// Parses a kind, refusing anything but a corporation or a public body (art. 11).
    /// Accepts the canonical spelling in any ASCII case, `public_body`, and the Japanese
    /// terms 法人 and 公共機関; "individual", "association", empty input and so on get
    /// [`ContractError::UnknownKind`] with a message naming the article.
    pub fn parse(s: &str) -> Result<ContractKind, ContractError> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "corporation" | "法人" => Ok(ContractKind::Corporation),
            "public-body" | "public_body" | "公共機関" => Ok(ContractKind::PublicBody),
            _ => Err(ContractError::UnknownKind(s.to_string())),
        }
    }
}

impl FromStr for ContractKind {
    type Err = ContractError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ContractKind::parse(s)
    }
}

impl fmt::Display for ContractKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The basic contract (基本契約, art. 12): made when applying, with at least the
/// separately specified minimum number of accounts. `start` is the service start date
/// written in the service start notice (art. 6-1, 7-1); the first term counts from it
/// (art. 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasicContract {
    pub start: NaiveDate,
    pub accounts: u32,
}

/// An additional contract (追加契約, art. 12): any number of accounts added to the
/// basic contract at any time after it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdditionalContract {
    pub start: NaiveDate,
    pub accounts: u32,
}

/// One contract unit (一つの契約単位, art. 12): a basic contract and its additional
/// contracts together. The hub refuses accounts beyond the unit's quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractUnit {
    pub basic: BasicContract,
    #[serde(default)]
    pub additional: Vec<AdditionalContract>,
}

impl ContractUnit {
    #[must_use]
    pub fn new(basic: BasicContract) -> ContractUnit {
        ContractUnit {
            basic,
            additional: Vec::new(),
        }
    }

    /// The number of accounts of the whole unit: the basic contract's plus every
    /// additional contract's (art. 12 counts them as one unit). Summed in `u64`, so it
    /// cannot overflow.
    #[must_use]
    pub fn quota(&self) -> u64 {
        self.additional
            .iter()
            .map(|a| u64::from(a.accounts))
            .fold(u64::from(self.basic.accounts), u64::saturating_add)
    }

    /// The quota on `at`: only contracts whose service has started by then count, since
    /// accounts of an additional contract are provided from its own start date
    /// (art. 13: its term counts from the day its service starts). Cancellation and
    /// termination are not known here; the caller drops such contracts first.
    #[must_use]
    pub fn quota_at(&self, at: NaiveDate) -> u64 {
        let basic = if self.basic.start <= at {
            u64::from(self.basic.accounts)
        } else {
            0
        };
        self.additional
            .iter()
            .filter(|a| a.start <= at)
            .map(|a| u64::from(a.accounts))
            .fold(basic, u64::saturating_add)
    }

    /// How many accounts may exist on `today`: [`quota_at`](Self::quota_at) of today, or
    /// of the service start while it is still ahead. Before the start the operator may
    /// prepare the basic contract's accounts (they go out with the service start notice,
    /// art. 7), but an additional contract's accounts count only from its own start
    /// (art. 13), and nobody logs in before the start date.
    #[must_use]
    pub fn account_quota(&self, today: NaiveDate) -> u64 {
        self.quota_at(today.max(self.basic.start))
    }

    /// Checks the unit against art. 12: the basic contract has at least `min_accounts`
    /// accounts ("別途規定する最小アカウント数以上", a minimum the operator configures),
    /// each additional contract adds at least one account and starts no earlier than
    /// the basic contract ("基本契約締結後の任意の時期に").
    pub fn validate(&self, min_accounts: u32) -> Result<(), ContractError> {
        if self.basic.accounts < min_accounts {
            return Err(ContractError::TooFewAccounts {
                min: min_accounts,
                accounts: self.basic.accounts,
            });
        }
        for (index, a) in self.additional.iter().enumerate() {
            if a.accounts == 0 {
                return Err(ContractError::EmptyAdditional { index });
            }
            if a.start < self.basic.start {
                return Err(ContractError::AdditionalBeforeBasic {
                    basic: self.basic.start,
                    additional: a.start,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn kind_parses_corporations_and_public_bodies() {
        assert_eq!(ContractKind::parse("corporation").unwrap(), ContractKind::Corporation);
        assert_eq!(ContractKind::parse(" Corporation ").unwrap(), ContractKind::Corporation);
        assert_eq!(ContractKind::parse("法人").unwrap(), ContractKind::Corporation);
        assert_eq!(ContractKind::parse("public-body").unwrap(), ContractKind::PublicBody);
        assert_eq!(ContractKind::parse("PUBLIC_BODY").unwrap(), ContractKind::PublicBody);
        assert_eq!("公共機関".parse::<ContractKind>().unwrap(), ContractKind::PublicBody);
    }

    #[test]
    fn kind_refuses_everything_else_naming_article_11() {
        for s in ["individual", "個人", "association", "", "corp", "public body"] {
            let e = ContractKind::parse(s).unwrap_err();
            assert_eq!(e, ContractError::UnknownKind(s.to_string()));
            let msg = e.to_string();
            assert!(msg.contains("art. 11"), "{msg}");
            assert!(msg.contains("corporations and public bodies only"), "{msg}");
        }
    }

    #[test]
    fn kind_round_trips_through_display_and_serde() {
        for k in [ContractKind::Corporation, ContractKind::PublicBody] {
            assert_eq!(k.to_string().parse::<ContractKind>().unwrap(), k);
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<ContractKind>(&json).unwrap(), k);
        }
        assert!(serde_json::from_str::<ContractKind>("\"individual\"").is_err());
    }

    fn unit() -> ContractUnit {
        ContractUnit {
            basic: BasicContract {
                start: d(2026, 11, 24),
                accounts: 10,
            },
            additional: vec![
                AdditionalContract {
                    start: d(2027, 3, 1),
                    accounts: 5,
                },
                AdditionalContract {
                    start: d(2027, 12, 10),
                    accounts: 2,
                },
            ],
        }
    }

    #[test]
    fn quota_sums_basic_and_additional() {
        assert_eq!(unit().quota(), 17);
        assert_eq!(
            ContractUnit::new(BasicContract {
                start: d(2026, 1, 1),
                accounts: 3
            })
            .quota(),
            3
        );
    }

    #[test]
    fn quota_at_counts_only_started_contracts() {
        let u = unit();
        assert_eq!(u.quota_at(d(2026, 11, 23)), 0);
        assert_eq!(u.quota_at(d(2026, 11, 24)), 10);
        assert_eq!(u.quota_at(d(2027, 2, 28)), 10);
        assert_eq!(u.quota_at(d(2027, 3, 1)), 15);
        assert_eq!(u.quota_at(d(2027, 12, 10)), 17);
    }

    #[test]
    fn account_quota_prepares_the_basic_contract_but_not_later_additions() {
        let u = unit();
        // Before the start: the basic contract's 10 accounts may be prepared.
        assert_eq!(u.account_quota(d(2026, 11, 1)), 10);
        assert_eq!(u.account_quota(d(2027, 2, 28)), 10);
        assert_eq!(u.account_quota(d(2027, 3, 1)), 15);
        assert_eq!(u.account_quota(d(2027, 12, 9)), 15);
        assert_eq!(u.account_quota(d(2027, 12, 10)), 17);
    }

    #[test]
    fn validate_states_the_minimum() {
        let u = unit();
        assert_eq!(u.validate(10), Ok(()));
        let e = u.validate(11).unwrap_err();
        assert_eq!(e, ContractError::TooFewAccounts { min: 11, accounts: 10 });
        assert!(e.to_string().contains("at least 11 accounts"), "{e}");
    }

    #[test]
    fn validate_refuses_empty_or_early_additional_contracts() {
        let mut u = unit();
        u.additional[1].accounts = 0;
        assert_eq!(u.validate(1), Err(ContractError::EmptyAdditional { index: 1 }));
        let mut u = unit();
        u.additional[0].start = d(2026, 11, 23);
        assert!(matches!(
            u.validate(1),
            Err(ContractError::AdditionalBeforeBasic { .. })
        ));
    }

    proptest! {
        #[test]
        fn quota_is_the_sum_and_never_overflows(
            basic in any::<u32>(),
            adds in proptest::collection::vec(any::<u32>(), 0..20),
        ) {
            let start = d(2026, 1, 1);
            let u = ContractUnit {
                basic: BasicContract { start, accounts: basic },
                additional: adds.iter().map(|&a| AdditionalContract { start, accounts: a }).collect(),
            };
            let want: u64 = u64::from(basic) + adds.iter().map(|&a| u64::from(a)).sum::<u64>();
            prop_assert_eq!(u.quota(), want);
            prop_assert_eq!(u.quota_at(start), want);
            prop_assert!(u.quota() >= u64::from(basic));
        }

        #[test]
        fn validate_accepts_exactly_at_or_above_the_minimum(accounts in 0u32..1000, min in 0u32..1000) {
            let u = ContractUnit::new(BasicContract { start: d(2026, 1, 1), accounts });
            prop_assert_eq!(u.validate(min).is_ok(), accounts >= min);
        }

        #[test]
        fn kind_parse_never_panics(s in ".*") {
            let _ = ContractKind::parse(&s);
        }
    }
}
