//! The configured flows (`[[dialog.flows]]`): the slots to collect and the lines to say.
//! The dialog runs them (`dialog::flow`); here they are only read and defaulted.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlotConfig {
    pub name: String,
    /// "text" (what the caller says) or "digits" (spoken or keyed digits; # ends, * clears).
    #[serde(default = "text_kind")]
    pub kind: String,
    #[serde(default)]
    pub min_digits: usize,
    pub ask_en: String,
    #[serde(default)]
    pub ask_zh: String,
    /// A card number, a PIN...: what is keyed or said for it is never logged or stored in
    /// clear (the call's DTMF column gets `x`, the ticket the value masked to its last four
    /// characters, and a read-back in the confirmation only those last four).
    #[serde(default)]
    pub sensitive: bool,
}

fn text_kind() -> String {
    "text".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    /// The intent that starts the flow.
    pub intent: String,
    /// Ticket kind created at the end.
    pub ticket_kind: String,
    pub slots: Vec<SlotConfig>,
    /// Read back before the ticket is made; {slot} is replaced by its value.
    pub confirm_en: String,
    #[serde(default)]
    pub confirm_zh: String,
    /// Said at the end; {ticket} is the ticket number, {slot} a value.
    pub done_en: String,
    #[serde(default)]
    pub done_zh: String,
    pub cancelled_en: String,
    #[serde(default)]
    pub cancelled_zh: String,
    /// How many times a slot or the confirmation may go wrong before a person takes over.
    #[serde(default = "two")]
    pub max_retries: u32,
}

fn two() -> u32 {
    2
}

/// The flow the sample deployment uses for fault reports.
pub fn default_flows() -> Vec<FlowConfig> {
    vec![FlowConfig {
        intent: "report_outage".into(),
        ticket_kind: "fault".into(),
        slots: vec![
            SlotConfig {
                name: "address".into(),
                kind: "text".into(),
                min_digits: 0,
                sensitive: false,
                ask_en: "I can log a fault report for you. What is the address where the service is not working?".into(),
                ask_zh: "我可以为您登记故障。请问出现故障的地址是哪里？".into(),
            },
            SlotConfig {
                name: "contact_number".into(),
                kind: "digits".into(),
                min_digits: 6,
                sensitive: false,
                ask_en: "What number can our engineer call you on? You can say it, or key it in and press hash.".into(),
                ask_zh: "工程师可以拨打哪个号码联系您？您可以直接说，或者按键输入后按井号键。".into(),
            },
        ],
        confirm_en: "I have the address {address}, and {contact_number} to call you back. Shall I log the report? Say yes or press 1, or say no or press 2.".into(),
        confirm_zh: "地址是{address}，联系电话{contact_number}。确认登记吗？请说“是”或按1，说“不是”或按2。".into(),
        done_en: "Done. Your fault report number is {ticket}. An engineer will call you within four hours. Is there anything else?".into(),
        done_zh: "已登记，您的故障单号是{ticket}。工程师会在四小时内联系您。还有什么可以帮您？".into(),
        cancelled_en: "All right, I have not logged anything. Is there anything else?".into(),
        cancelled_zh: "好的，没有登记。还有什么可以帮您？".into(),
        max_retries: 2,
    }]
}
