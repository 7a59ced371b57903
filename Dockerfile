# Builds the sluice jar and runs one role per container (see docker-compose.yml).
FROM maven:3.9-eclipse-temurin-17 AS build
WORKDIR /src
COPY . .
ARG MAVEN_PROFILES=""
RUN mvn -B -ntp -q package -DskipTests ${MAVEN_PROFILES}

FROM eclipse-temurin:17-jre
COPY --from=build /src/app/target/sluice.jar /opt/sluice/sluice.jar
ENV JAVA_TOOL_OPTIONS="-XX:MaxRAMPercentage=75"
ENTRYPOINT ["java", "-Dorg.apache.avro.SERIALIZABLE_PACKAGES=io.sluice.schemas", "-jar", "/opt/sluice/sluice.jar"]
