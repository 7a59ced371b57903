package io.sluice.ingress.internal;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Whether bytes are valid UTF-8, as RFC 6455 requires of every text message. Client messages
 * are nearly always ASCII, which is valid as it stands; anything else is left to the JDK's
 * decoder, which refuses overlong forms, surrogates and truncated sequences.
 */
final class Utf8 {
    private static final ThreadLocal<CharsetDecoder> DECODER = ThreadLocal.withInitial(() -> StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT));

    private Utf8() {
    }

    static boolean isValid(byte[] bytes, int offset, int length) {
        int end = offset + length;
        for (int i = offset; i < end; i++) {
            if (bytes[i] < 0) {
                // Everything before i was ASCII, so i starts a character.
                try {
                    DECODER.get().reset().decode(ByteBuffer.wrap(bytes, i, end - i));
                    return true;
                } catch (CharacterCodingException e) {
                    return false;
                }
            }
        }
        return true;
    }

    /**
     * Whether Jackson, given these bytes, would read them as UTF-16 or UTF-32: it guesses the
     * encoding from a NUL among the first two bytes. ASCII JSON in UTF-16 is valid UTF-8 (its
     * high bytes are NULs), so without this check such a message would be read, where UTF-8
     * JSON text can hold no NUL byte at all.
     */
    static boolean readAsOtherEncoding(byte[] bytes, int offset, int length) {
        return length > 0 && bytes[offset] == 0 || length > 1 && bytes[offset + 1] == 0;
    }
}
