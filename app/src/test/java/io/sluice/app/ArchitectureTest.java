package io.sluice.app;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The module boundaries, checked on the compiled classes: a wrong import fails the build.
 * schemas depends on nothing of ours; only workers touch ONNX Runtime; only idempotency touches
 * Redis; Jetty stays in ingress and egress; no module reaches into another's internals.
 */
class ArchitectureTest {
    static JavaClasses classes;

    @BeforeAll
    static void importClasses() {
        classes = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("io.sluice");
    }

    @Test
    void schemasDependOnNothingOfOurs() {
        noClasses().that().resideInAPackage("io.sluice.schemas..")
                .should().dependOnClassesThat().resideInAnyPackage("io.sluice.worker..", "io.sluice.idempotency..",
                        "io.sluice.ingress..", "io.sluice.egress..", "io.sluice.ops..", "io.sluice.app..",
                        "io.sluice.devstack..", "io.sluice.archive..")
                .check(classes);
    }

    @Test
    void onlyWorkersTouchOnnxRuntime() {
        noClasses().that().resideOutsideOfPackage("io.sluice.worker..")
                .should().dependOnClassesThat().resideInAnyPackage("ai.onnxruntime..", "ai.djl..")
                .check(classes);
    }

    @Test
    void onlyIdempotencyTouchesRedis() {
        noClasses().that().resideOutsideOfPackage("io.sluice.idempotency..")
                .should().dependOnClassesThat().resideInAnyPackage("redis.clients..")
                .check(classes);
    }

    @Test
    void jettyStaysInIngressAndEgress() {
        noClasses().that().resideOutsideOfPackages("io.sluice.ingress..", "io.sluice.egress..")
                .should().dependOnClassesThat().resideInAnyPackage("org.eclipse.jetty..")
                .check(classes);
    }

    @Test
    void internalsAreNotReachedFromOtherModules() {
        noClasses().that().resideOutsideOfPackage("io.sluice.ingress..")
                .should().dependOnClassesThat().resideInAPackage("io.sluice.ingress.internal..").check(classes);
        noClasses().that().resideOutsideOfPackage("io.sluice.worker..")
                .should().dependOnClassesThat().resideInAPackage("io.sluice.worker.internal..").check(classes);
        noClasses().that().resideOutsideOfPackage("io.sluice.idempotency..")
                .should().dependOnClassesThat().resideInAPackage("io.sluice.idempotency.internal..").check(classes);
        noClasses().that().resideOutsideOfPackage("io.sluice.archive..")
                .should().dependOnClassesThat().resideInAPackage("io.sluice.archive.internal..").check(classes);
    }

    @Test
    void schemasModuleHasNoDependencyOnTheKafkaServerOrRuntimePieces() {
        noClasses().that().resideInAPackage("io.sluice.schemas..")
                .should().dependOnClassesThat().resideInAnyPackage("kafka..", "org.eclipse..", "redis..")
                .check(classes);
    }
}
