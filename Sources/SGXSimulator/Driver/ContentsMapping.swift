/// Where the page contents live in an enclave memfd, for hosts that map them at ELRANGE itself
/// (the C interface's EDMM_SIM_MAP_CONTENTS: enclave code then runs natively at its addresses).
extension SimulatedEnclave {
    /// The memfd offset of page 0's contents; page n is `contentsOffset + n * 4096`.
    public var contentsOffset: UInt64 { region.layout.dataOffset }
}
