import EDMMCore
import SGXDevice
import SGXKernel
import SGXKernelTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The retry loop, driven through `KernelEnclaveDevice` on a fake kernel.
@Suite struct IoctlRunnerTests {
    let sleeper = RecordingSleeper()

    func runner(_ policy: RetryPolicy = .default) -> IoctlRunner {
        IoctlRunner(policy: policy, sleep: sleeper.sleep)
    }

    func policy(
        initial: Duration = .microseconds(1), max: Duration = .milliseconds(1), retries: Int = 1000,
        totalWait: Duration = .seconds(1)
    ) throws -> RetryPolicy {
        try RetryPolicy(
            initialBackoff: initial, maxBackoff: max, maxRetriesWithoutProgress: retries, maxTotalWait: totalWait)
    }

    @Test func completesInOneCallWhenTheKernelDoesTheWholeRange() throws {
        let (device, kernel) = try makeFakeKernelEnclave(replies: [.processed(errno: 0, count: 4 * page)])
        let outcome = runner().run(.modifyTypes(.trim), offset: 8 * page, length: 4 * page, on: device)

        #expect(outcome.stop == .completed)
        #expect(outcome.errno == 0)
        #expect(outcome.bytesDone == 4 * page)
        #expect(outcome.result == 0)
        #expect(outcome.ioctlCalls == 1)
        #expect(outcome.retries == RetryCounts())
        #expect(
            kernel.ioctlCalls == [
                .modifyTypes(fd: device.descriptor, ModifyTypesParams(offset: 8 * page, length: 4 * page, pageType: 4))
            ])
        #expect(sleeper.recorded.isEmpty)
    }

    @Test func resumesFromCountAfterEBUSY() throws {
        // EBUSY after two pages: the reclaimer owned the third page of REMOVE_PAGES.
        let (device, kernel) = try makeFakeKernelEnclave(replies: [
            .processed(errno: EBUSY, count: 2 * page), .processed(errno: 0, count: 2 * page),
        ])
        let outcome = runner().run(.removePages, offset: 0, length: 4 * page, on: device)

        #expect(outcome.stop == .completed)
        #expect(outcome.bytesDone == 4 * page)
        #expect(outcome.result == nil)
        #expect(outcome.ioctlCalls == 2)
        #expect(outcome.retries == RetryCounts(ebusy: 1))
        #expect(
            kernel.ioctlCalls == [
                .removePages(fd: device.descriptor, RemovePagesParams(offset: 0, length: 4 * page)),
                .removePages(fd: device.descriptor, RemovePagesParams(offset: 2 * page, length: 2 * page, count: 0)),
            ])
    }

    @Test func retriesAnEBUSYThatCopiedNothingBackWithTheSameRange() throws {
        // The dispatcher's EBUSY (another ioctl in progress) returns before any copy-back.
        let (device, kernel) = try makeFakeKernelEnclave(replies: [
            .rejected(errno: EBUSY), .processed(errno: 0, count: 3 * page),
        ])
        let outcome = runner().run(.restrictPermissions(.read), offset: page, length: 3 * page, on: device)

        #expect(outcome.isComplete)
        #expect(outcome.bytesDone == 3 * page)
        let first = RestrictPermissionsParams(offset: page, length: 3 * page, permissions: 1)
        #expect(
            kernel.ioctlCalls == [
                .restrictPermissions(fd: device.descriptor, first), .restrictPermissions(fd: device.descriptor, first),
            ])
    }

    @Test func resumesAfterEAGAINWithAPartialCountAndZeroedCountAndResult() throws {
        let (device, kernel) = try makeFakeKernelEnclave(replies: [
            // A non-zero result too, to show that nothing of the failed call is passed on.
            .processed(errno: EAGAIN, count: page, result: 7), .processed(errno: 0, count: 7 * page),
        ])
        let outcome = runner().run(.modifyTypes(.tcs), offset: 16 * page, length: 8 * page, on: device)

        #expect(outcome.isComplete)
        #expect(outcome.bytesDone == 8 * page)
        #expect(outcome.retries == RetryCounts(eagain: 1))
        #expect(
            kernel.ioctlCalls.last
                == .modifyTypes(
                    fd: device.descriptor,
                    ModifyTypesParams(offset: 17 * page, length: 7 * page, pageType: 1, result: 0, count: 0)))
    }

    @Test func retriesEINTR() throws {
        let (device, _) = try makeFakeKernelEnclave(replies: [
            .rejected(errno: EINTR), .processed(errno: EINTR, count: page), .processed(errno: 0, count: page),
        ])
        let outcome = runner().run(.modifyTypes(.trim), offset: 0, length: 2 * page, on: device)

        #expect(outcome.isComplete)
        #expect(outcome.bytesDone == 2 * page)
        #expect(outcome.ioctlCalls == 3)
        #expect(outcome.retries == RetryCounts(eintr: 2))
    }

    @Test func givesUpAfterMaxRetriesWithoutProgressWithTheLastErrno() throws {
        let (device, _) = try makeFakeKernelEnclave(replies: Array(repeating: .rejected(errno: EBUSY), count: 10))
        let outcome = runner(try policy(retries: 3)).run(.removePages, offset: 0, length: page, on: device)

        #expect(outcome.stop == .retriesExhausted)
        #expect(outcome.errno == EBUSY)
        #expect(outcome.bytesDone == 0)
        #expect(outcome.ioctlCalls == 4)
        #expect(outcome.retries == RetryCounts(ebusy: 3))
        #expect(sleeper.recorded == [.microseconds(1), .microseconds(2), .microseconds(4)])
        #expect(outcome.totalBackoff == .microseconds(7))
    }

    @Test func givesUpWhenTheNextPauseWouldExceedMaxTotalWait() throws {
        let (device, _) = try makeFakeKernelEnclave(replies: Array(repeating: .rejected(errno: EAGAIN), count: 10))
        let outcome = runner(try policy(totalWait: .microseconds(10)))
            .run(.modifyTypes(.trim), offset: 0, length: page, on: device)

        #expect(outcome.stop == .waitExhausted)
        #expect(outcome.errno == EAGAIN)
        #expect(outcome.ioctlCalls == 4)
        #expect(outcome.retries == RetryCounts(eagain: 3))
        #expect(sleeper.recorded == [.microseconds(1), .microseconds(2), .microseconds(4)])
    }

    @Test func givingUpKeepsTheBytesDoneBeforehand() throws {
        let (device, _) = try makeFakeKernelEnclave(replies: [
            .processed(errno: EAGAIN, count: 3 * page), .rejected(errno: EBUSY), .rejected(errno: EBUSY),
        ])
        let outcome = runner(try policy(retries: 1)).run(.removePages, offset: 0, length: 8 * page, on: device)

        #expect(outcome.stop == .retriesExhausted)
        #expect(outcome.errno == EBUSY)
        #expect(outcome.bytesDone == 3 * page)
        #expect(outcome.ioctlCalls == 3)
    }

    @Test func backoffDoublesUpToItsMaximumAndRestartsAfterProgress() throws {
        let (device, _) = try makeFakeKernelEnclave(replies: [
            .rejected(errno: EBUSY), .rejected(errno: EBUSY), .rejected(errno: EBUSY), .rejected(errno: EBUSY),
            .processed(errno: EAGAIN, count: page), .processed(errno: 0, count: page),
        ])
        let outcome = runner(try policy(max: .microseconds(4))).run(
            .removePages, offset: 0, length: 2 * page, on: device)

        #expect(outcome.isComplete)
        #expect(sleeper.recorded == [1, 2, 4, 4, 1].map { Duration.microseconds($0) })
        #expect(outcome.retries == RetryCounts(ebusy: 4, eagain: 1))
    }

    @Test func progressResetsTheRetryBound() throws {
        // Every other call completes a page: never more than one fruitless call in a row, so a
        // bound of 1 does not cut the range short.
        let replies: [FakeSyscalls.IoctlReply] =
            (0..<4).flatMap { _ in
                [.processed(errno: EAGAIN, count: page), .rejected(errno: EAGAIN)]
            } + [.processed(errno: 0, count: page)]
        let (device, _) = try makeFakeKernelEnclave(replies: replies)
        let outcome = runner(try policy(retries: 1)).run(.modifyTypes(.trim), offset: 0, length: 5 * page, on: device)

        #expect(outcome.isComplete)
        #expect(outcome.bytesDone == 5 * page)
        #expect(outcome.ioctlCalls == 9)
        #expect(outcome.retries == RetryCounts(eagain: 8))
    }

    @Test func nonRetryableErrnoReturnsAtOnceWithItsCountAndResult() throws {
        // EMODPR on an un-accepted page: SGX_PAGE_NOT_MODIFIABLE (20) after two good pages.
        let (device, kernel) = try makeFakeKernelEnclave(replies: [
            .processed(errno: EAGAIN, count: page), .processed(errno: EFAULT, count: 2 * page, result: 20),
        ])
        let outcome = runner().run(.restrictPermissions(.read), offset: 0, length: 8 * page, on: device)

        #expect(outcome.stop == .failed)
        #expect(outcome.errno == EFAULT)
        #expect(outcome.bytesDone == 3 * page)
        #expect(outcome.result == 20)
        #expect(outcome.ioctlCalls == 2)
        #expect(kernel.ioctlCalls.count == 2)
        #expect(sleeper.recorded == [.microseconds(1)])
    }

    @Test(arguments: [EPERM, EINVAL, EFAULT, ENODEV, ENOTTY, EBADF])
    func nonRetryableErrnoIsNotRetried(errno: Int32) throws {
        let (device, _) = try makeFakeKernelEnclave(replies: [.rejected(errno: errno)])
        let outcome = runner().run(.removePages, offset: 0, length: page, on: device)

        #expect(outcome.stop == .failed)
        #expect(outcome.errno == errno)
        #expect(outcome.bytesDone == 0)
        #expect(outcome.ioctlCalls == 1)
        #expect(outcome.retries.total == 0)
    }

    @Test func emptyRangeIsLeftToTheKernelToReject() throws {
        let (device, kernel) = try makeFakeKernelEnclave(replies: [.rejected(errno: EINVAL)])
        let outcome = runner().run(.removePages, offset: 0, length: 0, on: device)

        #expect(outcome.stop == .failed)
        #expect(outcome.errno == EINVAL)
        #expect(kernel.ioctlCalls == [.removePages(fd: device.descriptor, RemovePagesParams(offset: 0, length: 0))])
    }

    @Test func zeroRetriesWithoutProgressReturnsTheFirstEBUSY() throws {
        let (device, _) = try makeFakeKernelEnclave(replies: [
            .rejected(errno: EBUSY), .processed(errno: 0, count: page),
        ])
        let outcome = runner(try policy(retries: 0)).run(.removePages, offset: 0, length: page, on: device)

        #expect(outcome.stop == .retriesExhausted)
        #expect(outcome.errno == EBUSY)
        #expect(outcome.ioctlCalls == 1)
        #expect(sleeper.recorded.isEmpty)
    }

    @Test(arguments: [
        FakeSyscalls.IoctlReply.processed(errno: EAGAIN, count: 4 * 4096),
        .processed(errno: EAGAIN, count: 5 * 4096),
        .processed(errno: EAGAIN, count: 100),
        .processed(errno: 0, count: 3 * 4096),
    ])
    func countTheKernelNeverReportsStopsTheRun(reply: FakeSyscalls.IoctlReply) throws {
        let (device, _) = try makeFakeKernelEnclave(replies: [reply, .processed(errno: 0, count: 4 * page)])
        let outcome = runner().run(.modifyTypes(.trim), offset: 0, length: 4 * page, on: device)

        guard case .processed(let errno, let count, _) = reply else { return }
        #expect(outcome.stop == .invalidCount(count))
        #expect(outcome.errno == (errno == 0 ? EPROTO : errno))
        #expect(outcome.bytesDone == 0)
        #expect(outcome.ioctlCalls == 1)
    }

    @Test func runsOverAPageRange() throws {
        let (device, kernel) = try makeFakeKernelEnclave(replies: [.processed(errno: 0, count: 2 * page)])
        let range = PageRange(first: 5, count: 2)
        let outcome = runner().run(.modifyTypes(.trim), pages: range, on: device)

        #expect(outcome.isComplete)
        #expect(
            kernel.ioctlCalls == [
                .modifyTypes(fd: device.descriptor, ModifyTypesParams(offset: 5 * page, length: 2 * page, pageType: 4))
            ])
    }
}

@Suite struct RetryPolicyTests {
    @Test func negativeDurationsAreRejected() {
        #expect(throws: RetryPolicy.InvalidValue.negativeDuration(field: "max total wait", .seconds(-1))) {
            try RetryPolicy(
                initialBackoff: .zero, maxBackoff: .zero, maxRetriesWithoutProgress: 1, maxTotalWait: .seconds(-1))
        }
    }

    @Test func initialBackoffAboveMaximumIsRejected() {
        #expect(throws: RetryPolicy.InvalidValue.backoffRangeInverted(initial: .milliseconds(2), max: .milliseconds(1))) {
            try RetryPolicy(
                initialBackoff: .milliseconds(2), maxBackoff: .milliseconds(1), maxRetriesWithoutProgress: 1,
                maxTotalWait: .seconds(1))
        }
    }

    @Test func negativeRetryCountIsRejected() {
        #expect(throws: RetryPolicy.InvalidValue.negativeRetries(-1)) {
            try RetryPolicy(
                initialBackoff: .zero, maxBackoff: .zero, maxRetriesWithoutProgress: -1, maxTotalWait: .zero)
        }
    }

    @Test func defaultBacksOffFromOneMicrosecondToOneMillisecond() {
        #expect(RetryPolicy.default.initialBackoff == .microseconds(1))
        #expect(RetryPolicy.default.maxBackoff == .milliseconds(1))
    }
}
