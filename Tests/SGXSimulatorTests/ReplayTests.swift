import SGXSimulator
import Testing

/// `edmm-sim replay` speaks exactly the trace format of issue 2 §7.
@Suite struct ReplayTests {
    private func run(_ lines: [String]) throws -> [String] {
        let replay = try Replay()
        return lines.map { replay.perform($0) }
    }

    private static let build = [
        #"{"op":"create","enclave":"A","size_pages":16}"#,
        #"{"op":"add","enclave":"A","page":0,"count":1,"type":"tcs","perms":""}"#,
        #"{"op":"add","enclave":"A","page":1,"count":2,"type":"reg","perms":"rw"}"#,
        #"{"op":"init","enclave":"A"}"#,
    ]

    @Test func buildStepsAnswerOk() throws {
        #expect(try run(Self.build) == Array(repeating: #"{"ok":true}"#, count: 4))
    }

    @Test func aHoleIsEAUGedByEACCEPTAndThenAcceptedOnlyOnce() throws {
        let out = try run(
            Self.build + [
                #"{"op":"state","enclave":"A","page":5}"#,
                #"{"op":"eaccept","enclave":"A","page":5,"flags":523}"#,
                #"{"op":"state","enclave":"A","page":5}"#,
                #"{"op":"eaccept","enclave":"A","page":5,"flags":523}"#,
                #"{"op":"eaccept","enclave":"A","page":5,"flags":515}"#,
            ])
        #expect(
            Array(out.dropFirst(4)) == [
                #"{"state":"hole","perms":"---"}"#, #"{"ret":0}"#, #"{"state":"reg","perms":"rw-"}"#, #"{"ret":19}"#,
                #"{"exception":13}"#,
            ])
    }

    @Test func ioctlResultsCarryCountAndResultAsTheStructHoldsThem() throws {
        let out = try run(
            Self.build + [
                #"{"op":"ioctl","enclave":"A","cmd":"modify_types","offset":4096,"length":4096,"page_type":4,"count":0,"result":0}"#,
                #"{"op":"ioctl","enclave":"A","cmd":"remove_pages","offset":4096,"length":4096,"count":0}"#,
                #"{"op":"eaccept","enclave":"A","page":1,"flags":1040}"#,
                #"{"op":"ioctl","enclave":"A","cmd":"remove_pages","offset":4096,"length":4096,"count":0}"#,
                #"{"op":"ioctl","enclave":"A","cmd":"restrict_permissions","offset":8192,"length":4096,"permissions":1,"#
                    + #""count":7,"result":3}"#,
                #"{"op":"ioctl","enclave":"A","cmd":"restrict_permissions","offset":8192,"length":8192,"permissions":1,"#
                    + #""count":0,"result":0}"#,
                #"{"op":"state","enclave":"A","page":2}"#,
            ])
        #expect(
            Array(out.dropFirst(4)) == [
                #"{"rc":0,"errno":null,"count":4096,"result":0}"#,
                #"{"rc":-1,"errno":"EPERM","count":0,"result":null}"#,
                #"{"ret":0}"#,
                #"{"rc":0,"errno":null,"count":4096,"result":null}"#,
                #"{"rc":-1,"errno":"EINVAL","count":7,"result":3}"#,
                #"{"rc":-1,"errno":"EFAULT","count":4096,"result":0}"#,
                #"{"state":"reg_pr","perms":"r--"}"#,
            ])
    }

    @Test func invalidLinesGetAnErrorAndReplayGoesOn() throws {
        let out = try run([
            "not json", #"{"op":"fly"}"#, #"{"op":"create","enclave":"A","size_pages":3}"#,
            #"{"op":"init","enclave":"Z"}"#, #"{"op":"create","enclave":"A","size_pages":-1}"#,
            #"{"op":"create","enclave":"A","size_pages":4}"#,
        ])
        #expect(out[0] == #"{"error":"invalid line: not a JSON object with the fields of an operation"}"#)
        #expect(out[1] == #"{"error":"unknown op \"fly\""}"#)
        #expect(out[2] == #"{"error":"size_pages must be a power of two from 1 to 4294967296"}"#)
        #expect(out[3] == #"{"error":"no enclave Z"}"#)
        #expect(out[4] == #"{"error":"field \"size_pages\" must be an unsigned 64-bit integer"}"#)
        #expect(out[5] == #"{"ok":true}"#)
    }

    @Test func enclaveOperationsBeforeEINITRaiseGP() throws {
        let out = try run(Array(Self.build.prefix(3)) + [#"{"op":"emodpe","enclave":"A","page":1,"flags":4}"#])
        #expect(out.last == #"{"exception":13}"#)
    }
}
