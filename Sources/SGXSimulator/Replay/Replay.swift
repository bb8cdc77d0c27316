import EDMMCore
import EDMMSystem
import FoundationEssentials
import Glibc
import SGXDevice

/// The simulator's scripting interface: JSON-lines device operations in, one JSON result per
/// line out (format of issue 2 §7, documented in docs/simulator.md). Each trace runs on a fresh
/// machine whose EPC is large enough that it never evicts.
///
/// Enclave-side operations run as the enclave would: through the simulated CPU, so an access to
/// a hole of an initialized enclave first faults and is EAUG'ed. The replaying process maps each
/// enclave's whole ELRANGE RW at create and each added page with its own protection.
public final class Replay {
    public let machine: SimulatedMachine
    private var enclaves: [String: SimulatedEnclave] = [:]
    /// Also accept `read`/`write` of a u64, `die_holding_lock` and `stop_holding_lock` (the
    /// cross-process test helper uses them).
    private let extended: Bool

    /// 2^26 pages (256 GiB) of EPC: the slot table is sparse, so the size costs nothing.
    public static let epcPages: UInt64 = 1 << 26

    public init(machine: SimulatedMachine? = nil, extended: Bool = false) throws(SimulatorError) {
        if let machine {
            self.machine = machine
        } else {
            self.machine = try SimulatedMachine.create(.init(epcPages: Self.epcPages, enclaveCapacity: 1024))
        }
        self.extended = extended
    }

    /// Makes an enclave opened elsewhere available to the trace under `name`.
    public func adopt(_ enclave: SimulatedEnclave, as name: String) { enclaves[name] = enclave }

    struct Line: Decodable {
        var op: String
        var enclave: String?
        var size_pages: Number?
        var page: Number?
        var count: Number?
        var type: String?
        var perms: String?
        var cmd: String?
        var offset: Number?
        var length: Number?
        var page_type: Number?
        var permissions: Number?
        var result: Number?
        var flags: Number?
        var source: Number?
        var value: Number?
    }

    /// A JSON number that should be a u64; `value` is nil for anything else (-1, 1.5, "x"), so
    /// the error can name the field.
    struct Number: Decodable {
        var value: UInt64?
        init(from decoder: any Decoder) throws {
            value = try? decoder.singleValueContainer().decode(UInt64.self)
        }
    }

    struct Failure: Error { var message: String }

    /// Runs one trace line and returns its JSON result.
    public func perform(_ text: String) -> String {
        do {
            let line: Line
            do {
                line = try JSONDecoder().decode(Line.self, from: Data(text.utf8))
            } catch {
                throw Failure(message: "invalid line: \(Self.describe(error))")
            }
            return try perform(line)
        } catch let failure as Failure {
            return "{\"error\":\(JSONText.quote(failure.message))}"
        } catch {
            return "{\"error\":\(JSONText.quote("\(error)"))}"
        }
    }

    private func perform(_ line: Line) throws -> String {
        switch line.op {
        case "create": return try create(line)
        case "add": return try add(line)
        case "init":
            let rc = try enclave(line).initialize()
            guard rc == 0 else { throw Failure(message: "EINIT failed: \(ErrnoName.of(rc))") }
            return "{\"ok\":true}"
        case "ioctl": return try ioctl(line)
        case "eaccept", "eacceptcopy", "emodpe": return try enclu(line)
        case "state": return try state(line)
        case "read" where extended, "write" where extended: return try memory(line)
        case "die_holding_lock" where extended: dieHoldingLock(try enclave(line), machineLock: line.type == "machine")
        case "stop_holding_lock" where extended: return try stopHoldingLock(try enclave(line), machineLock: line.type == "machine")
        default: throw Failure(message: "unknown op \(JSONText.quote(line.op))")
        }
    }

    private func create(_ line: Line) throws -> String {
        let name = try required(line.enclave, "enclave")
        guard enclaves[name] == nil else { throw Failure(message: "enclave \(name) already exists") }
        let pages = try number(line.size_pages, "size_pages")
        guard pages > 0, pages & (pages - 1) == 0, pages <= EnclaveLayout.maxSize >> Page.shift else {
            throw Failure(message: "size_pages must be a power of two from 1 to \(EnclaveLayout.maxSize >> Page.shift)")
        }
        let size = pages << Page.shift
        // ECREATE: the base is aligned to the size; the size itself is.
        let enclave = try SimulatedEnclave.create(machine: machine, base: size, size: size)
        let rc = enclave.mmap(address: enclave.base, length: size, protection: .rw)
        guard rc == 0 else { throw Failure(message: "mmap failed: \(ErrnoName.of(rc))") }
        enclaves[name] = enclave
        return "{\"ok\":true}"
    }

    private func add(_ line: Line) throws -> String {
        let enclave = try enclave(line)
        let page = try number(line.page, "page")
        let count = try number(line.count, "count", default: 1)
        let type = try required(line.type, "type")
        let letters = line.perms ?? ""
        guard let perms = PagePermissions(letters: letters) else {
            throw Failure(message: "perms must be \"\", \"r\", \"rw\", \"rx\" or \"rwx\"")
        }
        let secinfo: SecInfoFlags
        switch type {
        case "reg": secinfo = SecInfoFlags([.pageType(.reg), SecInfoFlags(permissions: perms)])
        case "tcs": secinfo = SecInfoFlags([.pageType(.tcs), SecInfoFlags(permissions: perms)])
        default: throw Failure(message: "type must be \"reg\" or \"tcs\"")
        }
        let (offset, o1) = page.multipliedReportingOverflow(by: Page.size)
        let (length, o2) = count.multipliedReportingOverflow(by: Page.size)
        guard !o1, !o2 else { throw Failure(message: "page or count out of range") }
        let (rc, done) = enclave.addPages(offset: offset, length: length, secinfo: secinfo)
        guard rc == 0 else { throw Failure(message: "EADD failed after \(done / Page.size) pages: \(ErrnoName.of(rc))") }
        let protection: PagePermissions = type == "tcs" ? .rw : perms
        _ = enclave.mmap(address: enclave.base + offset, length: length, protection: protection)
        return "{\"ok\":true}"
    }

    private func ioctl(_ line: Line) throws -> String {
        let enclave = try enclave(line)
        let cmd = try required(line.cmd, "cmd")
        let offset = try number(line.offset, "offset")
        let length = try number(line.length, "length")
        let rc: Int32
        let count: UInt64
        let result: String
        switch cmd {
        case "modify_types":
            var p = ModifyTypesParams(
                offset: offset, length: length, pageType: try number(line.page_type, "page_type", default: 0),
                result: try number(line.result, "result", default: 0), count: try number(line.count, "count", default: 0))
            rc = enclave.modifyTypes(&p)
            (count, result) = (p.count, "\(p.result)")
        case "restrict_permissions":
            var p = RestrictPermissionsParams(
                offset: offset, length: length, permissions: try number(line.permissions, "permissions", default: 0),
                result: try number(line.result, "result", default: 0), count: try number(line.count, "count", default: 0))
            rc = enclave.restrictPermissions(&p)
            (count, result) = (p.count, "\(p.result)")
        case "remove_pages":
            var p = RemovePagesParams(offset: offset, length: length, count: try number(line.count, "count", default: 0))
            rc = enclave.removePages(&p)
            (count, result) = (p.count, "null")
        default:
            throw Failure(message: "cmd must be modify_types, restrict_permissions or remove_pages")
        }
        let errno = rc == 0 ? "null" : JSONText.quote(ErrnoName.of(rc))
        return "{\"rc\":\(rc == 0 ? 0 : -1),\"errno\":\(errno),\"count\":\(count),\"result\":\(result)}"
    }

    private func enclu(_ line: Line) throws -> String {
        let enclave = try enclave(line)
        let address = try address(enclave, try number(line.page, "page"))
        let flags = SecInfoFlags(rawValue: try number(line.flags, "flags"))
        // The enclave cannot run before EINIT: EENTER raises #GP.
        guard enclave.isInitialized else { return "{\"exception\":13}" }
        let cpu = try enclave.cpu()
        let outcome: InstructionOutcome
        switch line.op {
        case "eaccept": outcome = cpu.eaccept(address, flags: flags)
        case "eacceptcopy":
            let source = try self.address(enclave, try number(line.source, "source"))
            outcome = cpu.eacceptcopy(address, source: source, flags: flags)
        default: outcome = cpu.emodpe(address, flags: flags)
        }
        switch outcome {
        case .returned(let rax): return "{\"ret\":\(rax)}"
        case .exception(let x): return "{\"exception\":\(x.vector)}"
        }
    }

    private func state(_ line: Line) throws -> String {
        let enclave = try enclave(line)
        let page = try number(line.page, "page")
        guard page < enclave.size >> Page.shift else { throw Failure(message: "page \(page) is outside ELRANGE") }
        let info = enclave.pageInfo(offset: page << Page.shift)
        return "{\"state\":\"\(info.state.rawValue)\",\"perms\":\"\(info.permissions)\"}"
    }

    private func memory(_ line: Line) throws -> String {
        let enclave = try enclave(line)
        let address = try address(enclave, try number(line.page, "page"))
        guard enclave.isInitialized else { return "{\"exception\":13}" }
        let cpu = try enclave.cpu()
        if line.op == "read" {
            switch cpu.read(address) {
            case .success(let v): return "{\"value\":\(v)}"
            case .failure(let x): return "{\"exception\":\(x.vector),\"error_code\":\(x.errorCode)}"
            }
        }
        switch cpu.write(address, try number(line.value, "value")) {
        case .success: return "{\"ok\":true}"
        case .failure(let x): return "{\"exception\":\(x.vector),\"error_code\":\(x.errorCode)}"
        }
    }

    /// Takes the enclave lock (and the machine lock if asked) and exits without unlocking: how
    /// the tests make the next locker see EOWNERDEAD.
    private func dieHoldingLock(_ enclave: SimulatedEnclave, machineLock: Bool) -> Never {
        _ = try? enclave.region.withLock { () -> Void in
            if machineLock { _ = machine.locked { _exit(9) } }
            _exit(9)
        }
        _exit(9)
    }

    /// Takes the machine lock (or the enclave's), says so on standard output with
    /// `{"holding":true}`, and stops itself (SIGSTOP) until continued: a client stopped by Ctrl-Z
    /// or a debugger in the middle of a simulated instruction.
    private func stopHoldingLock(_ enclave: SimulatedEnclave, machineLock: Bool) throws -> String {
        let stop: () -> Void = {
            print("{\"holding\":true}")
            fflush(nil)
            _ = raise(SIGSTOP)
        }
        if machineLock {
            _ = machine.locked(stop)
        } else {
            try enclave.region.withLock { () throws(SimulatorError) in stop() }
        }
        return "{\"ok\":true}"
    }

    // MARK: Helpers

    private func enclave(_ line: Line) throws -> SimulatedEnclave {
        let name = try required(line.enclave, "enclave")
        guard let enclave = enclaves[name] else { throw Failure(message: "no enclave \(name)") }
        return enclave
    }

    private func address(_ enclave: SimulatedEnclave, _ page: UInt64) throws -> UInt64 {
        let (offset, overflow) = page.multipliedReportingOverflow(by: Page.size)
        let (address, wrap) = enclave.base.addingReportingOverflow(offset)
        guard !overflow, !wrap else { throw Failure(message: "page \(page) is out of range") }
        return address
    }

    private func number(_ n: Number?, _ field: String, default fallback: UInt64? = nil) throws -> UInt64 {
        guard let n else {
            if let fallback { return fallback }
            throw Failure(message: "missing field \"\(field)\"")
        }
        guard let value = n.value else { throw Failure(message: "field \"\(field)\" must be an unsigned 64-bit integer") }
        return value
    }

    private func required<T>(_ value: T?, _ field: String) throws -> T {
        guard let value else { throw Failure(message: "missing field \"\(field)\"") }
        return value
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "missing field \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx):
            "field \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type or range"
        case DecodingError.dataCorrupted(let ctx):
            ctx.codingPath.isEmpty
                ? "not a JSON object with the fields of an operation"
                : "field \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\" is invalid"
        default: "\(error)"
        }
    }
}
