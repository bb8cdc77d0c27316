/// The named EPCM states of a page (SDM vol. 3D, 34.x; reference §9.1): what software that can
/// read the EPCM tells apart. No real CPU lets software read it; the simulator can, and the daemon
/// compares its ledger with it there. The names are the replay `state` op's vocabulary.
public enum EPCMState: String, Sendable, CaseIterable {
    case hole
    case regPending = "reg_pending"
    case reg
    case regPR = "reg_pr"
    case tcsModified = "tcs_modified"
    case tcs
    case trimModified = "trim_modified"
    case trim
    /// A combination of fields no legal instruction sequence produces (an invariant violation).
    case invalid
}
