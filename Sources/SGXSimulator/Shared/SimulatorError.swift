import EDMMSystem
import SGXDevice

/// Why a simulated machine or enclave could not be created, opened or used.
public enum SimulatorError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The descriptor is not a memfd region at all (pipe, socket, device, directory...).
    case notARegion(String)
    /// The first 8 bytes name neither kind of region.
    case badMagic(expected: RegionKind)
    /// A region of the other kind (a machine passed where an enclave is expected, or back).
    case wrongKind(expected: RegionKind, found: RegionKind)
    case unsupportedVersion(found: UInt32, expected: UInt32)
    /// The file is smaller or larger than its header says.
    case sizeMismatch(actual: UInt64, header: UInt64)
    /// A header field or offset is out of bounds or inconsistent.
    case corruptHeader(String)
    /// The region's size is not sealed, so another process could shrink it under us.
    case notSealed
    /// The enclave belongs to a different simulated machine.
    case wrongMachine
    /// The enclave's table entry was released (or reused); the region is dead.
    case enclaveReleased(index: UInt32)
    case machineFull(enclaveCapacity: UInt32)
    case tooManyAttachedProcesses(limit: Int)
    case invalidConfiguration(String)
    /// The operation needs the page-contents mapping, which this process did not map.
    case contentsNotMapped
    case system(call: String, errno: Int32)

    public enum RegionKind: String, Sendable {
        case machine = "simulated machine"
        case enclave = "simulated enclave"
    }

    public var description: String {
        switch self {
        case .notARegion(let what): "not a simulated EPC region: \(what)"
        case .badMagic(let expected): "not a \(expected.rawValue): bad magic"
        case .wrongKind(let expected, let found): "expected a \(expected.rawValue), found a \(found.rawValue)"
        case .unsupportedVersion(let found, let expected): "version \(found), expected \(expected)"
        case .sizeMismatch(let actual, let header): "region is \(actual) bytes, header says \(header)"
        case .corruptHeader(let detail): "corrupt header: \(detail)"
        case .notSealed: "region size is not sealed (F_SEAL_SHRINK missing)"
        case .wrongMachine: "enclave belongs to another simulated machine"
        case .enclaveReleased(let index): "enclave \(index) was released"
        case .machineFull(let capacity): "enclave table full (\(capacity) enclaves)"
        case .tooManyAttachedProcesses(let limit): "enclave already open in \(limit) processes"
        case .invalidConfiguration(let detail): "invalid configuration: \(detail)"
        case .contentsNotMapped: "page contents are not mapped in this process"
        case .system(let call, let errno): "\(call) failed: \(ErrnoName.of(errno))"
        }
    }
}
