package io.sluice.schemas;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import org.apache.avro.Schema;

/**
 * Every schema version Sluice has released, kept as resources under
 * {@code io/sluice/schemas/released/<Record>/v<N>.avsc}. Once a version is released its file never
 * changes; a new version is added beside it, and the compatibility gate test checks the current
 * schema against all of them in both directions.
 */
public final class ReleasedSchemas {
    private ReleasedSchemas() {
    }

    /** Released versions of the named record, oldest first; empty for a record never released. */
    public static List<Schema> versionsOf(String recordName) {
        List<Schema> versions = new ArrayList<>();
        for (int v = 1; ; v++) {
            String resource = "released/" + recordName + "/v" + v + ".avsc";
            try (InputStream in = ReleasedSchemas.class.getResourceAsStream(resource)) {
                if (in == null) {
                    return versions;
                }
                versions.add(SluiceCodec.parse(in));
            } catch (IOException e) {
                throw new UncheckedIOException("Cannot read released schema " + resource, e);
            }
        }
    }
}
