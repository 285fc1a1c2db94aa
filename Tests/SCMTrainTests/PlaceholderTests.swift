import Testing
@testable import SCMTrain

@Suite("Trainer")
struct TrainerInfoTests {
    @Test("The checkpoint format is versioned")
    func format() { #expect(SCMTrainInfo.checkpointFormat.hasPrefix("scm-checkpoint/")) }
}
